//! Physical sanity of the path tracer against closed-form answers: furnace tests, a diffuse
//! plane under an area light, energy conservation of mirrors and glass, no NaNs.

use prism_tracer::{
    cornell_box, pass_tasks, render_tile, Camera, Film, Geometry, Instance, Material, Mesh,
    PassSpec, PixelMask, PixelStats, RenderSettings, Rgb, Scene, SceneError, TileId, TileRect,
    TileTask, Transform, Vec3,
};

/// An axis-aligned box with outward-facing triangles; `open_top` leaves out the +z face.
fn box_mesh(lo: Vec3, hi: Vec3, open_top: bool) -> Mesh {
    let c = |i: usize| {
        Vec3::new(
            if i & 1 == 0 { lo.x } else { hi.x },
            if i & 2 == 0 { lo.y } else { hi.y },
            if i & 4 == 0 { lo.z } else { hi.z },
        )
    };
    let positions: Vec<Vec3> = (0..8).map(c).collect();
    // Faces as corner quads; orientation fixed below so that normals point outwards.
    let mut faces = vec![
        [0, 2, 6, 4], // -x
        [1, 3, 7, 5], // +x
        [0, 1, 5, 4], // -y
        [2, 3, 7, 6], // +y
        [0, 1, 3, 2], // -z
    ];
    if !open_top {
        faces.push([4, 5, 7, 6]); // +z
    }
    let centre = (lo + hi) * 0.5;
    let mut indices = Vec::new();
    for f in faces {
        for t in [[f[0], f[1], f[2]], [f[0], f[2], f[3]]] {
            let [a, b, cc] = t.map(|i| positions[i]);
            let n = (b - a).cross(cc - a);
            let out = (a + b + cc) * (1.0 / 3.0) - centre;
            let t = if n.dot(out) >= 0.0 {
                t
            } else {
                [t[0], t[2], t[1]]
            };
            indices.push(t.map(|i| i as u32));
        }
    }
    Mesh::new(positions, indices).unwrap()
}

/// A square of side `2 * half` centred on `centre` in the plane z = centre.z.
fn square(centre: Vec3, half: f32) -> Mesh {
    let p = |dx: f32, dy: f32| centre + Vec3::new(dx * half, dy * half, 0.0);
    Mesh::new(
        vec![p(-1.0, -1.0), p(1.0, -1.0), p(1.0, 1.0), p(-1.0, 1.0)],
        vec![[0, 1, 2], [0, 2, 3]],
    )
    .unwrap()
}

fn scene(meshes: Vec<Mesh>, materials: Vec<Material>, camera: Camera) -> Scene {
    let instances = (0..meshes.len() as u32)
        .map(|i| Instance {
            mesh: i,
            material: i,
            transform: Transform::IDENTITY,
        })
        .collect();
    Scene::new(
        Geometry::build(meshes, instances).unwrap(),
        materials,
        camera,
    )
    .unwrap()
}

/// Camera above the origin looking down the -z axis.
fn top_camera(height: f32, vfov: f32) -> Camera {
    Camera {
        position: Vec3::new(0.0, 0.0, height),
        look_at: Vec3::ZERO,
        up: Vec3::new(0.0, 1.0, 0.0),
        vfov_degrees: vfov,
    }
}

/// Statistics of `spp` samples of each pixel of the `size` x `size` image's centre square of
/// side `centre`, pooled into one.
fn centre_stats(
    scene: &Scene,
    settings: &RenderSettings,
    size: u32,
    centre: u32,
    spp: u32,
) -> PixelStats {
    let o = (size - centre) / 2;
    let rect = TileRect {
        x: o,
        y: o,
        width: centre,
        height: centre,
    };
    let id = TileId { pass: 0, tile: 0 };
    let task = TileTask::new(id, (size, size), rect, spp, 7, PixelMask::All).unwrap();
    let result = render_tile(scene, settings, &task);
    let mut pooled = PixelStats::default();
    for s in &result.stats {
        assert!(s.mean.iter().chain(&s.m2).all(|v| v.is_finite()));
        pooled.merge(s);
    }
    pooled
}

/// Asserts that every channel's mean is `expected` within `sigmas` standard errors plus a
/// relative `slack` for bias (depth truncation, geometry).
fn assert_mean(stats: &PixelStats, expected: [f64; 3], sigmas: f64, slack: f64, what: &str) {
    let err = stats.std_error();
    for c in 0..3 {
        let tol = sigmas * err[c] + slack * expected[c].abs() + 1e-9;
        assert!(
            (stats.mean[c] - expected[c]).abs() <= tol,
            "{what}: channel {c} mean {} expected {} (std error {}, n {})",
            stats.mean[c],
            expected[c],
            err[c],
            stats.count
        );
    }
}

const ENV: Rgb = Rgb::new(0.8, 1.0, 1.3);

fn env_f64(scale: f64) -> [f64; 3] {
    [
        f64::from(ENV.x) * scale,
        f64::from(ENV.y) * scale,
        f64::from(ENV.z) * scale,
    ]
}

#[test]
fn furnace_convex_diffuse_box_reflects_albedo_times_environment() {
    // One bounce off a convex diffuse object, then the uniform environment: a * L exactly.
    let a = Rgb::new(0.25, 0.5, 0.75);
    let s = scene(
        vec![box_mesh(Vec3::splat(-1.0), Vec3::splat(1.0), false)],
        vec![Material::Lambertian { albedo: a }],
        top_camera(5.0, 10.0),
    )
    .with_background(ENV)
    .unwrap();
    let stats = centre_stats(&s, &RenderSettings::default(), 16, 6, 8);
    let expected = [
        f64::from(a.x * ENV.x),
        f64::from(a.y * ENV.y),
        f64::from(a.z * ENV.z),
    ];
    assert_mean(&stats, expected, 0.0, 1e-6, "convex furnace");
}

#[test]
fn bounce_rays_never_hit_their_own_surface() {
    // Floors at z = 0 and z = 500 seen from far away at a grazing angle, where the hit point's
    // z loses digits to cancellation. One bounce then the environment: every sample is exactly
    // a * L. A bounce ray that re-hit its own floor would reflect again and show a^2 * L.
    let a = 0.5f32;
    for z in [0.0f32, 500.0] {
        let camera = Camera {
            position: Vec3::new(-3000.0, 1234.5, z + 1500.0),
            look_at: Vec3::new(0.0, 0.0, z),
            up: Vec3::new(0.0, 0.0, 1.0),
            vfov_degrees: 5.0,
        };
        let s = scene(
            vec![square(Vec3::new(0.0, 0.0, z), 1000.0)],
            vec![Material::Lambertian {
                albedo: Rgb::splat(a),
            }],
            camera,
        )
        .with_background(Rgb::ONE)
        .unwrap();
        let stats = centre_stats(&s, &RenderSettings::default(), 32, 32, 16);
        for c in 0..3 {
            assert_eq!(stats.mean[c], f64::from(a), "floor at z = {z}");
            assert_eq!(stats.variance()[c], 0.0, "floor at z = {z}");
        }
    }
}

#[test]
fn white_furnace_concave_box_is_invisible() {
    // An open box of albedo 1 seen from above: light bounces around inside, but with no
    // absorption every path carries the environment's radiance out. Any bias in BSDF sampling,
    // throughput or Russian roulette shows up here.
    let s = scene(
        vec![box_mesh(
            Vec3::new(-1.0, -1.0, -2.0),
            Vec3::new(1.0, 1.0, 0.0),
            true,
        )],
        vec![Material::Lambertian { albedo: Rgb::ONE }],
        top_camera(4.0, 20.0),
    )
    .with_background(ENV)
    .unwrap();
    let settings = RenderSettings {
        max_depth: 200,
        russian_roulette_depth: 2,
    };
    let stats = centre_stats(&s, &settings, 16, 8, 32);
    assert!(
        stats.variance()[0] > 0.0,
        "paths should vary (Russian roulette)"
    );
    assert_mean(&stats, env_f64(1.0), 4.0, 0.002, "white furnace");
}

#[test]
fn mirrors_and_glass_create_no_energy() {
    // In a uniform environment a perfect mirror and clear glass are invisible, and a mirror of
    // reflectance r shows r * L; nothing may come out brighter than the environment.
    let settings = RenderSettings {
        max_depth: 100,
        russian_roulette_depth: 3,
    };
    let cases = [
        (
            Material::Mirror {
                reflectance: Rgb::ONE,
            },
            1.0,
            1e-6,
        ),
        (
            Material::Mirror {
                reflectance: Rgb::splat(0.6),
            },
            0.6,
            1e-6,
        ),
        (Material::Dielectric { ior: 1.5 }, 1.0, 0.01),
        (Material::Dielectric { ior: 2.4 }, 1.0, 0.02),
    ];
    for (material, scale, slack) in cases {
        let s = scene(
            vec![box_mesh(Vec3::splat(-1.0), Vec3::splat(1.0), false)],
            vec![material],
            top_camera(5.0, 10.0),
        )
        .with_background(ENV)
        .unwrap();
        let stats = centre_stats(&s, &settings, 16, 6, 64);
        assert_mean(&stats, env_f64(scale), 4.0, slack, &format!("{material:?}"));
    }
}

#[test]
fn a_glass_slab_transmits_the_fresnel_series() {
    // Looking through a thin glass slab at a large light behind it, at normal incidence: the
    // internal reflections sum to a transmittance of (1 - R) / (1 + R), R = ((n-1)/(n+1))^2.
    let le = Rgb::new(1.0, 2.0, 3.0);
    let s = scene(
        vec![
            box_mesh(Vec3::new(-5.0, -5.0, -0.1), Vec3::new(5.0, 5.0, 0.1), false),
            square(Vec3::new(0.0, 0.0, -3.0), 20.0),
        ],
        vec![
            Material::Dielectric { ior: 1.5 },
            Material::Emissive { radiance: le },
        ],
        top_camera(5.0, 2.0),
    );
    let r = 0.04f64;
    let t = (1.0 - r) / (1.0 + r);
    let stats = centre_stats(&s, &RenderSettings::default(), 8, 4, 256);
    let expected = [le.x, le.y, le.z].map(|l| f64::from(l) * t);
    assert_mean(&stats, expected, 4.0, 0.002, "glass slab");
}

#[test]
fn diffuse_plane_under_a_square_light_matches_the_form_factor() {
    // A square light of side 2 at height 1 above a large diffuse floor. Radiance of the floor
    // below the light's centre: albedo * L_e * F, with F the form factor from a point to the
    // parallel square (four corner rectangles of side s/h = 1). Single bounce: the light is
    // black and the floor flat. Exercises light sampling, BSDF sampling and their MIS weights.
    let albedo = 0.6f32;
    let le = Rgb::new(2.0, 1.0, 0.5);
    let camera = Camera {
        position: Vec3::new(3.0, 0.0, 0.5),
        look_at: Vec3::ZERO,
        up: Vec3::new(0.0, 0.0, 1.0),
        vfov_degrees: 1.0,
    };
    let s = scene(
        vec![
            square(Vec3::ZERO, 10.0),
            square(Vec3::new(0.0, 0.0, 1.0), 1.0),
        ],
        vec![
            Material::Lambertian {
                albedo: Rgb::splat(albedo),
            },
            Material::Emissive { radiance: le },
        ],
        camera,
    );
    assert_eq!(s.light_count(), 2);
    assert!((s.light_area() - 4.0).abs() < 1e-9);
    let corner = |a: f64, b: f64| {
        let (ra, rb) = ((1.0 + a * a).sqrt(), (1.0 + b * b).sqrt());
        (a / ra * (b / ra).atan() + b / rb * (a / rb).atan()) / (2.0 * std::f64::consts::PI)
    };
    let f = 4.0 * corner(1.0, 1.0);
    let expected = [le.x, le.y, le.z].map(|l| f64::from(albedo) * f64::from(l) * f);
    let stats = centre_stats(&s, &RenderSettings::default(), 9, 1, 4000);
    assert_mean(&stats, expected, 4.0, 0.003, "plane under a square light");
    // Direct lighting only (max depth 1) gives the same: the floor sees nothing else.
    let direct = centre_stats(
        &s,
        &RenderSettings {
            max_depth: 1,
            russian_roulette_depth: 3,
        },
        9,
        1,
        4000,
    );
    assert_mean(&direct, expected, 4.0, 0.003, "direct only");
    // Max depth 0 sees no emitter through this pixel.
    let none = centre_stats(
        &s,
        &RenderSettings {
            max_depth: 0,
            russian_roulette_depth: 3,
        },
        9,
        1,
        16,
    );
    assert_eq!(none.mean, [0.0; 3]);
}

#[test]
fn cornell_box_renders_clean_finite_and_plausible() {
    let scene = cornell_box();
    assert_eq!(scene.light_count(), 2);
    assert!((scene.light_area() - 130.0 * 105.0).abs() < 1.0);
    let settings = RenderSettings::default();
    let size = 16;
    let spec = PassSpec {
        index: 0,
        samples_per_pixel: 8,
        seed: 3,
    };
    let mut film = Film::new(size, size).unwrap();
    for t in pass_tasks(size, size, 8, &spec, None).unwrap() {
        film.merge(&render_tile(&scene, &settings, &t)).unwrap();
    }
    assert!(film.ray_count() > u64::from(size * size * 8));
    // The box fills the frame: rays through the image's corners hit it.
    let frame = scene.camera.frame(size, size);
    let s = size as f32;
    for (x, y) in [
        (0.01, 0.01),
        (s - 0.01, 0.01),
        (0.01, s - 0.01),
        (s - 0.01, s - 0.01),
    ] {
        assert!(
            scene.geometry.intersect(&frame.ray(x, y)).is_some(),
            "corner ({x}, {y}) sees outside the box"
        );
    }
    let px = |x: u32, y: u32| film.pixel(x, y).unwrap();
    for p in film.pixels() {
        assert_eq!(p.count, 8);
        assert!(p
            .mean
            .iter()
            .chain(&p.m2)
            .all(|v| v.is_finite() && *v >= 0.0));
    }
    // The red wall is on the left, the green wall on the right.
    let left = px(1, size / 2);
    let right = px(size - 2, size / 2);
    assert!(
        left.mean[0] > 2.0 * left.mean[1],
        "left wall {:?}",
        left.mean
    );
    assert!(
        right.mean[1] > 2.0 * right.mean[0],
        "right wall {:?}",
        right.mean
    );
    // The light, seen directly near the top centre, is by far the brightest pixel.
    let (brightest, _) = film
        .pixels()
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.mean[0].total_cmp(&b.1.mean[0]))
        .unwrap();
    let (bx, by) = (brightest as u32 % size, brightest as u32 / size);
    assert!(
        by < size / 4 && bx.abs_diff(size / 2) <= 2,
        "brightest at ({bx}, {by})"
    );
    let top = px(bx, by).mean[0];
    let floor = px(size / 2, size - 1).mean[0];
    assert!(
        top > 3.0 && floor > 0.02 && floor < 1.0,
        "light {top} floor {floor}"
    );
}

#[test]
fn glass_and_mirror_in_the_cornell_box_stay_finite() {
    // Make the white surfaces (floor, ceiling, back wall, blocks) glass, then mirror: nothing
    // may be NaN.
    let base = cornell_box();
    for m in [
        Material::Dielectric { ior: 1.5 },
        Material::Mirror {
            reflectance: Rgb::splat(0.9),
        },
    ] {
        let mut materials = base.materials.clone();
        materials[0] = m;
        let geometry = cornell_box().geometry;
        let s = Scene::new(geometry, materials, base.camera).unwrap();
        let spec = PassSpec {
            index: 0,
            samples_per_pixel: 4,
            seed: 11,
        };
        let mut film = Film::new(12, 12).unwrap();
        for t in pass_tasks(12, 12, 12, &spec, None).unwrap() {
            film.merge(&render_tile(&s, &RenderSettings::default(), &t))
                .unwrap();
        }
        assert!(film
            .pixels()
            .iter()
            .all(|p| p.mean.iter().chain(&p.m2).all(|v| v.is_finite())));
    }
}

#[test]
fn invalid_scenes_are_refused_with_the_culprit_named() {
    let build = || {
        Geometry::build(
            vec![square(Vec3::ZERO, 1.0)],
            vec![Instance {
                mesh: 0,
                material: 2,
                transform: Transform::IDENTITY,
            }],
        )
        .unwrap()
    };
    let white = Material::Lambertian {
        albedo: Rgb::splat(0.5),
    };
    let err = Scene::new(build(), vec![white], top_camera(1.0, 40.0))
        .err()
        .unwrap();
    assert_eq!(
        err,
        SceneError::MissingMaterial {
            instance: 0,
            material: 2,
            count: 1
        }
    );
    let bad = Material::Lambertian {
        albedo: Rgb::new(0.5, 2.0, 0.5),
    };
    let err = Scene::new(build(), vec![white, white, bad], top_camera(1.0, 40.0))
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("material 2:"), "{err}");
    let err = Scene::new(build(), vec![white; 3], top_camera(1.0, 0.0))
        .err()
        .unwrap();
    assert!(err.to_string().contains("vfov"), "{err}");
    let ok = Scene::new(build(), vec![white; 3], top_camera(1.0, 40.0)).unwrap();
    assert!(ok
        .with_background(Rgb::new(1.0, f32::NAN, 0.0))
        .err()
        .unwrap()
        .to_string()
        .contains("background"));
}
