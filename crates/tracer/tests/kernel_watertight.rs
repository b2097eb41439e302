//! Watertightness: rays aimed exactly at shared edges and vertices of closed meshes, and rays
//! from inside closed meshes, must all hit.

use prism_tracer::bench::{asteroid, icosphere, Rng};
use prism_tracer::geometry::{Geometry, Instance};
use prism_tracer::math::{Ray, Transform, Vec3};
use prism_tracer::mesh::Mesh;
use prism_tracer::triangle::PreparedRay;
use std::collections::BTreeSet;
use std::path::Path;

fn build(m: &Mesh) -> Geometry {
    let inst = Instance {
        mesh: 0,
        material: 0,
        transform: Transform::IDENTITY,
    };
    Geometry::build(vec![m.clone()], vec![inst]).unwrap()
}

/// The mesh's vertices and points on its shared edges (midpoints, thirds and a point very
/// close to each end), each computed in f32 from the two end points.
fn vertices_and_edge_points(m: &Mesh) -> Vec<Vec3> {
    let mut edges = BTreeSet::new();
    for t in &m.indices {
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            edges.insert((a.min(b), a.max(b)));
        }
    }
    let mut points: Vec<Vec3> = m.positions.clone();
    for (a, b) in edges {
        let (pa, pb) = (m.positions[a as usize], m.positions[b as usize]);
        for s in [0.5, 1.0 / 3.0, 2.0 / 3.0, 1e-4] {
            points.push(pa + (pb - pa) * s);
        }
    }
    points
}

#[test]
fn rays_through_edges_and_vertices_of_a_sphere_all_hit() {
    let m = icosphere(3);
    let g = build(&m);
    let targets = vertices_and_edge_points(&m);
    assert_eq!(targets.len(), 642 + 4 * 1920);
    let mut rng = Rng::new(1);
    let mut misses = Vec::new();
    for &p in &targets {
        // From inside (anywhere in the inner half of the ball) ...
        let inside = rng.unit_vector() * rng.range(0.0, 0.5);
        // ... and from outside, on the side the point faces.
        let outside = p * rng.range(1.5, 4.0) + rng.unit_vector() * 0.3;
        for origin in [inside, outside] {
            let ray = Ray::new(origin, p - origin);
            if g.intersect(&ray).is_none() || !g.occluded(&ray) {
                misses.push(ray);
            }
        }
    }
    assert!(
        misses.is_empty(),
        "{} rays slipped through, e.g. {:?}",
        misses.len(),
        misses[0]
    );
}

#[test]
fn rays_from_inside_closed_meshes_always_hit() {
    let mut rng = Rng::new(2);
    // A fine sphere, and a rough closed surface that is star-shaped about the origin (its
    // radius stays within about 0.6..1.4), seen from points near the centre.
    for (m, reach) in [(icosphere(5), 0.9), (asteroid(5), 0.3)] {
        let g = build(&m);
        let mut misses = 0;
        for _ in 0..20_000 {
            let origin = rng.unit_vector() * rng.range(0.0, reach);
            let ray = Ray::new(origin, rng.unit_vector());
            if g.intersect(&ray).is_none() || !g.occluded(&ray) {
                misses += 1;
            }
        }
        assert_eq!(
            misses,
            0,
            "{misses} rays escaped a mesh of {} triangles",
            m.triangle_count()
        );
    }
}

/// Whether `p` is inside the closed mesh: an odd number of crossings along three directions.
fn inside_by_parity(m: &Mesh, p: Vec3) -> bool {
    [
        Vec3::new(0.31, 0.87, 0.42),
        Vec3::new(-0.77, 0.12, 0.58),
        Vec3::new(0.05, -0.66, -0.91),
    ]
    .iter()
    .all(|&d| {
        let r = PreparedRay::new(&Ray::new(p, d)).unwrap();
        (0..m.triangle_count())
            .filter(|&i| r.intersect(&m.triangle(i)).is_some())
            .count()
            % 2
            == 1
    })
}

#[test]
fn rays_from_inside_the_scanned_bunny_hit_all_its_vertices_and_edges() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bunny.ply");
    let m = prism_tracer::io::load_mesh(&path).unwrap();
    let g = build(&m);
    // Find a few interior points near the middle of the bunny's box.
    let (lo, hi) = m.bounds().unwrap();
    let mut rng = Rng::new(3);
    let mut interior = Vec::new();
    while interior.len() < 3 {
        let c = (lo + hi) * 0.5;
        let e = (hi - lo) * 0.2;
        let p = c + Vec3::new(
            rng.range(-e.x, e.x),
            rng.range(-e.y, e.y),
            rng.range(-e.z, e.z),
        );
        if inside_by_parity(&m, p) {
            interior.push(p);
        }
    }
    let targets = vertices_and_edge_points(&m);
    let mut misses = Vec::new();
    for (k, &p) in targets.iter().enumerate() {
        let origin = interior[k % interior.len()];
        let ray = Ray::new(origin, p - origin);
        if g.intersect(&ray).is_none() {
            misses.push(ray);
        }
    }
    for _ in 0..20_000 {
        let ray = Ray::new(interior[rng.below(3)], rng.unit_vector());
        if g.intersect(&ray).is_none() || !g.occluded(&ray) {
            misses.push(ray);
        }
    }
    assert!(
        misses.is_empty(),
        "{} of {} rays escaped the bunny, e.g. {:?}",
        misses.len(),
        targets.len() + 20_000,
        misses[0]
    );
}
