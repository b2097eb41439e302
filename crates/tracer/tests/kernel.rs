//! The BVH kernel against brute force: closest hits on random triangle soups, a real scanned
//! mesh and instanced scenes; degenerate triangles; invalid rays; build errors.

use prism_tracer::bench::{icosphere, Rng};
use prism_tracer::geometry::{Geometry, GeometryError, Hit, Instance};
use prism_tracer::math::{Ray, Transform, Vec3};
use prism_tracer::mesh::Mesh;
use prism_tracer::triangle::PreparedRay;
use rayon::prelude::*;
use std::path::Path;

fn bunny() -> Mesh {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bunny.ply");
    prism_tracer::io::load_mesh(&path).expect("the vendored bunny loads")
}

fn soup(n: usize, seed: u64) -> Mesh {
    let mut rng = Rng::new(seed);
    let mut positions = Vec::new();
    let mut indices = Vec::new();
    for i in 0..n as u32 {
        let c = Vec3::new(
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
        );
        // Sizes over two orders of magnitude, like a real scene's mix of detail.
        let size = 0.01 * 30f32.powf(rng.f32());
        for _ in 0..3 {
            positions.push(c + rng.unit_vector() * size);
        }
        indices.push([3 * i, 3 * i + 1, 3 * i + 2]);
    }
    Mesh::new(positions, indices).unwrap()
}

fn identity(mesh: u32) -> Instance {
    Instance {
        mesh,
        material: mesh,
        transform: Transform::IDENTITY,
    }
}

/// The ray in an instance's object space, computed exactly as the kernel does.
fn object_ray(ray: &Ray, t: &Transform) -> Ray {
    if t.is_identity() {
        *ray
    } else {
        Ray::segment(
            t.inverse_point(ray.origin),
            t.inverse_vector(ray.dir),
            ray.tmin,
            ray.tmax,
        )
    }
}

/// `(instance, prim, t)` of the nearest hit by testing every triangle of every instance
/// (`tris[m]` lists the corners of mesh `m`'s triangles).
fn brute_force(
    tris: &[Vec<[Vec3; 3]>],
    instances: &[Instance],
    ray: &Ray,
) -> Option<(u32, u32, f32)> {
    let mut best: Option<(u32, u32, f32)> = None;
    for (i, inst) in instances.iter().enumerate() {
        let Some(p) = PreparedRay::new(&object_ray(ray, &inst.transform)) else {
            continue;
        };
        for (prim, tri) in tris[inst.mesh as usize].iter().enumerate() {
            if let Some(h) = p.intersect(tri) {
                if best.is_none_or(|b| h.t < b.2) {
                    best = Some((i as u32, prim as u32, h.t));
                }
            }
        }
    }
    best
}

/// Random rays: half aimed at a random point of a random world triangle, half in random
/// directions from random points of the (slightly enlarged) scene box; some are segments.
fn rays(g: &Geometry, n: usize, seed: u64) -> Vec<Ray> {
    let mut rng = Rng::new(seed);
    let (lo, hi) = g.bounds();
    let (c, e) = ((lo + hi) * 0.5, (hi - lo) * 0.75);
    (0..n)
        .map(|k| {
            let origin = c + Vec3::new(
                rng.range(-e.x, e.x),
                rng.range(-e.y, e.y),
                rng.range(-e.z, e.z),
            );
            let dir = if k % 2 == 0 {
                let inst = rng.below(g.instances().len()) as u32;
                let count = g.mesh_triangle_count(g.instances()[inst as usize].mesh);
                let [a, b, cc] = g.world_triangle(inst, rng.below(count) as u32);
                let (r1, r2) = (rng.f32().sqrt(), rng.f32());
                (a * (1.0 - r1) + b * (r1 * (1.0 - r2)) + cc * (r1 * r2)) - origin
            } else {
                rng.unit_vector() * rng.range(0.1, 10.0)
            };
            let mut r = Ray::new(origin, dir);
            if k % 5 == 0 {
                r.tmin = rng.range(0.0, 0.5);
                r.tmax = r.tmin + rng.range(0.0, 2.0);
            }
            r
        })
        .collect()
}

/// Every ray's BVH hit equals the brute-force hit: same triangle (or, for an exact tie in
/// `t`, a triangle that brute force also hits at that `t`), `t` within 1e-5 relative, and a
/// well-formed normal. Returns the number of hits.
fn check_against_brute_force(meshes: &[Mesh], instances: &[Instance], rays: &[Ray]) -> usize {
    let g = Geometry::build(meshes.to_vec(), instances.to_vec()).unwrap();
    let tris: Vec<Vec<[Vec3; 3]>> = meshes
        .iter()
        .map(|m| (0..m.triangle_count()).map(|i| m.triangle(i)).collect())
        .collect();
    let failures: Vec<String> = rays
        .par_iter()
        .filter_map(|ray| {
            let got = g.intersect(ray);
            let want = brute_force(&tris, instances, ray);
            let ok = match (&got, want) {
                (None, None) => true,
                (Some(h), Some((inst, prim, t))) => {
                    let same = h.instance == inst && h.prim == prim;
                    let tie = !same && {
                        let i = &instances[h.instance as usize];
                        let tri = meshes[i.mesh as usize].triangle(h.prim as usize);
                        let p = PreparedRay::new(&object_ray(ray, &i.transform)).unwrap();
                        p.intersect(&tri).is_some_and(|x| x.t == t)
                    };
                    (same || tie) && (h.t - t).abs() <= 1e-5 * t.abs() && normal_ok(&g, h)
                }
                _ => false,
            };
            let occluded_ok = g.occluded(ray) == want.is_some();
            (!ok || !occluded_ok).then(|| format!("{ray:?}: bvh {got:?}, brute force {want:?}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rays differ, e.g. {}",
        failures.len(),
        rays.len(),
        failures[0]
    );
    // One query reused for every ray, occlusion (which leaves traversals early) interleaved
    // with closest hits, answers as a fresh one does.
    let mut query = g.query();
    for ray in rays {
        assert_eq!(query.occluded(ray), g.occluded(ray), "{ray:?}");
        assert_eq!(query.intersect(ray), g.intersect(ray), "{ray:?}");
    }
    rays.iter().filter(|r| g.intersect(r).is_some()).count()
}

/// Unit length, oriented like the world triangle (reversed where the instance mirrors, whose
/// world winding is reversed), barycentrics inside, the triangle's first corner exactly as
/// `world_triangle` gives it.
fn normal_ok(g: &Geometry, h: &Hit) -> bool {
    let [a, b, c] = g.world_triangle(h.instance, h.prim);
    if h.corner != a {
        return false;
    }
    let inst = &g.instances()[h.instance as usize];
    let t = &inst.transform;
    let x = |v: Vec3| t.vector(v);
    let mirrors = x(Vec3::new(1.0, 0.0, 0.0))
        .cross(x(Vec3::new(0.0, 1.0, 0.0)))
        .dot(x(Vec3::new(0.0, 0.0, 1.0)))
        < 0.0;
    let n = (b - a).cross(c - a).normalize() * if mirrors { -1.0 } else { 1.0 };
    (h.normal.length() - 1.0).abs() < 1e-4
        && h.normal.dot(n) > 0.999
        && h.material == inst.material
        && h.u >= 0.0
        && h.v >= 0.0
        && h.u + h.v <= 1.0 + 1e-5
}

#[test]
fn closest_hits_match_brute_force_on_a_random_soup() {
    let meshes = vec![soup(1000, 1)];
    let instances = vec![identity(0)];
    let g = Geometry::build(meshes.clone(), instances.clone()).unwrap();
    let r = rays(&g, 100_000, 2);
    let hits = check_against_brute_force(&meshes, &instances, &r);
    assert!(hits > 50_000, "only {hits} of 100000 rays hit");
}

#[test]
fn closest_hits_match_brute_force_on_a_real_mesh() {
    let full = bunny();
    assert_eq!(full.triangle_count(), 75_408);
    // 100k rays against a 1000-triangle piece of the scan (an open surface with the scan's
    // irregular triangles), and fewer rays against the whole closed bunny, keep brute force
    // to about a second.
    let piece = Mesh::new(full.positions.clone(), full.indices[..1000].to_vec()).unwrap();
    let g = Geometry::build(vec![piece.clone()], vec![identity(0)]).unwrap();
    let hits = check_against_brute_force(&[piece], &[identity(0)], &rays(&g, 100_000, 3));
    assert!(hits > 40_000, "only {hits} hits");
    let g = Geometry::build(vec![full.clone()], vec![identity(0)]).unwrap();
    // Past 2 MiB a built geometry lives in a mapping of its own (huge pages): this checks
    // that route too.
    assert!(g.as_bytes().len() > 2 << 20, "{} bytes", g.as_bytes().len());
    let hits = check_against_brute_force(&[full], &[identity(0)], &rays(&g, 500, 4));
    assert!(hits > 250, "only {hits} hits");
}

#[test]
fn closest_hits_match_brute_force_on_an_instanced_scene() {
    let full = bunny();
    let piece = Mesh::new(full.positions.clone(), full.indices[..1500].to_vec()).unwrap();
    let meshes = vec![piece, icosphere(2), soup(300, 5)];
    let rot = |axis: Vec3, deg: f32| Transform::rotate(axis, deg).unwrap();
    let scale = |s: Vec3| Transform::scale(s).unwrap();
    let tr = Transform::translate;
    let instances = vec![
        identity(0),
        Instance {
            mesh: 0,
            material: 7,
            transform: tr(Vec3::new(1.5, 0.0, 0.0))
                .then_after(&rot(Vec3::new(0.0, 1.0, 0.0), 90.0)),
        },
        Instance {
            mesh: 1,
            material: 1,
            transform: tr(Vec3::new(0.0, 1.2, 0.3)).then_after(&scale(Vec3::new(0.3, 0.5, 0.2))),
        },
        Instance {
            mesh: 1,
            material: 2,
            // A mirror: normals must still point out of the sphere.
            transform: tr(Vec3::new(-1.0, -0.5, 0.0)).then_after(&scale(Vec3::new(-0.4, 0.4, 0.4))),
        },
        Instance {
            mesh: 2,
            material: 3,
            transform: rot(Vec3::new(1.0, 1.0, 0.2), 33.0),
        },
        Instance {
            mesh: 2,
            material: 4,
            transform: tr(Vec3::new(0.2, -1.3, 0.9)).then_after(&scale(Vec3::new(0.5, 2.0, 0.5))),
        },
        Instance {
            mesh: 0,
            material: 5,
            transform: tr(Vec3::new(0.0, 0.0, -1.2)).then_after(&scale(Vec3::splat(1.5))),
        },
    ];
    let g = Geometry::build(meshes.clone(), instances.clone()).unwrap();
    assert_eq!(g.triangle_count(), 3 * 1500 + 2 * 320 + 2 * 300);
    assert_eq!(g.instances(), &instances[..]);
    let hits = check_against_brute_force(&meshes, &instances, &rays(&g, 10_000, 6));
    assert!(hits > 4000, "only {hits} hits");
}

#[test]
fn shared_meshes_are_stored_once() {
    let m = icosphere(3);
    let one = Geometry::build(vec![m.clone()], vec![identity(0)]).unwrap();
    let many: Vec<Instance> = (0..50)
        .map(|i| Instance {
            mesh: 0,
            material: 0,
            transform: Transform::translate(Vec3::new(3.0 * i as f32, 0.0, 0.0)),
        })
        .collect();
    let fifty = Geometry::build(vec![m], many).unwrap();
    assert_eq!(fifty.triangle_count(), 50 * one.triangle_count());
    // Fifty instances cost their records and top-level nodes, not fifty copies of the mesh.
    let extra = fifty.as_bytes().len() - one.as_bytes().len();
    assert!(
        extra < 50 * 400,
        "{extra} extra bytes for 49 more instances"
    );
    let hit = fifty
        .intersect(&Ray::new(
            Vec3::new(3.0 * 17.0, 0.0, 5.0),
            Vec3::new(0.0, 0.0, -1.0),
        ))
        .unwrap();
    assert_eq!(hit.instance, 17);
    assert!((hit.t - 4.0).abs() < 0.05);
}

#[test]
fn degenerate_triangles_never_hit_and_never_give_nan() {
    // Mesh fields are public, so a mesh can bypass Mesh::new's filtering; build must cope.
    let mut m = Mesh::default();
    m.positions = vec![
        Vec3::new(0.0, 0.0, 0.0),
        Vec3::new(1.0, 0.0, 0.0),
        Vec3::new(2.0, 0.0, 0.0),
        Vec3::new(0.0, 1.0, 0.0),
        Vec3::new(1.0, 1.0, 1.0),
        Vec3::new(2.0, 2.0, 2.0),
    ];
    // Collinear, repeated vertex, all one point, and collinear on a diagonal.
    m.indices = vec![[0, 1, 2], [0, 0, 3], [4, 4, 4], [0, 4, 5]];
    let g = Geometry::build(vec![m.clone()], vec![identity(0)]).unwrap();
    assert_eq!(g.mesh_triangle_count(0), 4);
    let mut rng = Rng::new(9);
    for _ in 0..20_000 {
        // Aim at points on the degenerate triangles themselves.
        let [a, b, _] = m.triangle(rng.below(4));
        let target = a + (b - a) * rng.f32();
        let origin = target + rng.unit_vector() * rng.range(0.1, 3.0);
        let ray = Ray::new(origin, target - origin);
        assert_eq!(g.intersect(&ray), None);
        assert!(!g.occluded(&ray));
    }
    // With a real triangle added, hits on it are finite and never name a degenerate one.
    m.indices.push([0, 1, 3]);
    let g = Geometry::build(vec![m], vec![identity(0)]).unwrap();
    let mut hits = 0;
    for _ in 0..20_000 {
        let target = Vec3::new(rng.range(-0.2, 1.2), rng.range(-0.2, 1.2), 0.0);
        let origin = target + rng.unit_vector() * rng.range(0.1, 3.0);
        if let Some(h) = g.intersect(&Ray::new(origin, target - origin)) {
            hits += 1;
            assert_eq!(h.prim, 4);
            assert!([h.t, h.u, h.v].iter().all(|x| x.is_finite()) && h.normal.is_finite());
        }
    }
    assert!(hits > 5000);
}

#[test]
fn invalid_rays_miss_without_panicking() {
    let g = Geometry::build(vec![icosphere(2)], vec![identity(0)]).unwrap();
    let o = Vec3::new(0.0, 0.0, 5.0);
    let d = Vec3::new(0.0, 0.0, -1.0);
    let bad = [
        Ray::new(o, Vec3::ZERO),
        Ray::new(o, Vec3::new(f32::NAN, 0.0, -1.0)),
        Ray::new(o, Vec3::new(0.0, f32::INFINITY, -1.0)),
        Ray::new(Vec3::new(f32::NAN, 0.0, 5.0), d),
        Ray::new(Vec3::new(0.0, f32::NEG_INFINITY, 5.0), d),
        Ray::segment(o, d, f32::NAN, 10.0),
        Ray::segment(o, d, 0.0, f32::NAN),
        Ray::segment(o, d, 6.0, 5.0),
    ];
    for r in &bad {
        assert_eq!(g.intersect(r), None, "{r:?}");
        assert!(!g.occluded(r), "{r:?}");
    }
    // Extreme but valid rays: answers, no panic.
    let odd = [
        Ray::new(o, Vec3::new(0.0, 0.0, -1e-15)),
        Ray::new(o, Vec3::new(1e-40, 0.0, -1.0)),
        Ray::new(Vec3::new(3e38, 0.0, 0.0), Vec3::new(-1.0, 0.0, 0.0)),
        Ray::new(o, Vec3::new(0.0, 0.0, -3e38)),
        Ray::segment(o, d, f32::NEG_INFINITY, f32::INFINITY),
        Ray::segment(o, d, 4.0, 4.0),
    ];
    for r in &odd {
        let h = g.intersect(r);
        assert_eq!(h.is_some(), g.occluded(r), "{r:?}");
        if let Some(h) = h {
            assert!(h.t.is_finite() && h.normal.is_finite(), "{r:?}: {h:?}");
        }
    }
    assert!(g.intersect(&odd[0]).is_some());
    assert!(g.intersect(&odd[2]).is_some());
}

#[test]
fn empty_scenes_and_meshes_answer_misses() {
    let ray = Ray::new(Vec3::ZERO, Vec3::new(1.0, 0.0, 0.0));
    let none = Geometry::build(vec![], vec![]).unwrap();
    assert_eq!(none.intersect(&ray), None);
    assert!(!none.occluded(&ray));
    assert_eq!(none.bounds(), (Vec3::ZERO, Vec3::ZERO));
    assert_eq!(none.triangle_count(), 0);
    let empty = Geometry::build(vec![Mesh::default(), icosphere(1)], vec![identity(0)]).unwrap();
    assert_eq!(empty.intersect(&ray), None);
    assert_eq!(empty.mesh_triangle_count(1), 80);
}

#[test]
fn bad_input_is_an_error_that_says_what() {
    let err = Geometry::build(vec![icosphere(0)], vec![identity(0), identity(3)]).unwrap_err();
    assert_eq!(
        err,
        GeometryError::MissingMesh {
            instance: 1,
            mesh: 3,
            mesh_count: 1
        }
    );
    assert!(err.to_string().contains("instance 1") && err.to_string().contains("mesh 3"));
    let mut flat = identity(0);
    flat.transform.m[2] = [0.0; 4];
    let err = Geometry::build(vec![icosphere(0)], vec![identity(0), flat]).unwrap_err();
    assert_eq!(err, GeometryError::NonInvertibleTransform { instance: 1 });
    let mut wrong_inverse = identity(0);
    wrong_inverse.transform.inv[0][0] = 2.0;
    let err = Geometry::build(vec![icosphere(0)], vec![wrong_inverse]).unwrap_err();
    assert_eq!(err, GeometryError::NonInvertibleTransform { instance: 0 });
    let mut nan = icosphere(0);
    nan.positions[3].y = f32::NAN;
    let err = Geometry::build(vec![icosphere(0), nan], vec![]).unwrap_err();
    assert!(
        matches!(err, GeometryError::InvalidMesh { mesh: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("vertex 3"), "{err}");
    let mut out_of_range = icosphere(0);
    out_of_range.indices[5] = [0, 1, 99];
    let err = Geometry::build(vec![out_of_range], vec![]).unwrap_err();
    assert!(err.to_string().contains("triangle 5"), "{err}");
    // Finite everywhere, but the instance reaches 1e40: such bounds were built (and cached),
    // and a cache holding them is refused as damaged.
    let mut wide = icosphere(0);
    wide.positions.iter_mut().for_each(|p| *p *= 1e10);
    let stretch = Instance {
        transform: Transform::scale(Vec3::splat(1e30)).unwrap(),
        ..identity(0)
    };
    let err = Geometry::build(
        vec![icosphere(0), wide],
        vec![identity(0), Instance { mesh: 1, ..stretch }],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the scene is too large: instance 1 (of mesh 1): its transform takes the mesh beyond \
         the range of f32; a scene must lie within 1e12 units of the origin: scale it down"
    );
}

#[test]
fn queries_report_what_was_built() {
    let m = icosphere(1);
    let t = Transform::translate(Vec3::new(10.0, 0.0, 0.0))
        .then_after(&Transform::scale(Vec3::splat(2.0)).unwrap());
    let inst = Instance {
        mesh: 0,
        material: 4,
        transform: t,
    };
    let g = Geometry::build(vec![m.clone()], vec![inst]).unwrap();
    let (lo, hi) = g.bounds();
    assert!(
        (lo - Vec3::new(8.0, -2.0, -2.0)).abs().max_component() < 0.01,
        "{lo:?}"
    );
    assert!(
        (hi - Vec3::new(12.0, 2.0, 2.0)).abs().max_component() < 0.01,
        "{hi:?}"
    );
    for prim in 0..m.triangle_count() {
        let w = g.world_triangle(0, prim as u32);
        let o = m.triangle(prim);
        for k in 0..3 {
            assert_eq!(w[k], t.point(o[k]));
        }
    }
    let hit = g
        .intersect(&Ray::new(
            Vec3::new(10.0, 0.0, 10.0),
            Vec3::new(0.0, 0.0, -1.0),
        ))
        .unwrap();
    assert!((hit.t - 8.0).abs() < 0.1 && hit.material == 4);
    // The outward normal of the sphere's top, facing the ray.
    assert!(hit.normal.z > 0.9, "{:?}", hit.normal);
    let g2 = g.clone();
    std::thread::spawn(move || assert_eq!(g2.triangle_count(), 80))
        .join()
        .unwrap();
}

/// A closed mesh placed by a mirroring transform keeps its outside out: every ray from far
/// outside meets a normal that faces it. (The world winding of a mirrored mesh is reversed;
/// a normal that followed it would point in, and a glass ball would render as a bubble.)
#[test]
fn mirrored_closed_meshes_keep_outward_normals() {
    let mirrors = [
        Vec3::new(-0.6, 0.6, 0.6),
        Vec3::new(-0.6, -0.6, -0.6),
        Vec3::new(0.6, 0.6, 0.6),
    ];
    for s in mirrors {
        let transform = Transform::translate(Vec3::new(0.5, -0.2, 0.1))
            .then_after(&Transform::scale(s).unwrap());
        let instance = Instance {
            mesh: 0,
            material: 0,
            transform,
        };
        let g = Geometry::build(vec![icosphere(2)], vec![instance]).unwrap();
        let mut rng = Rng::new(11);
        let mut hits = 0;
        for _ in 0..2000 {
            let origin = Vec3::new(0.5, -0.2, 0.1) + rng.unit_vector() * 5.0;
            let target = Vec3::new(0.5, -0.2, 0.1) + rng.unit_vector() * 0.3;
            let dir = (target - origin).normalize();
            let h = g
                .intersect(&Ray::new(origin, dir))
                .expect("aimed inside the ball");
            assert!(
                h.normal.dot(dir) < 0.0,
                "scale {s:?}: {h:?} faces away from {dir:?}"
            );
            hits += 1;
        }
        assert_eq!(hits, 2000);
    }
}
