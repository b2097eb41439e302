//! A model renders the same at any size: one a millionth of the size of another (a part in
//! metres a few micrometres wide) gives the same picture, and one far from the origin for
//! its size is flagged, since single precision cannot hold its surfaces there.

use prism_tracer::scene_file::load_scene_with_report;
use prism_tracer::{pass_tasks, render_tile, Film, PassSpec, RenderSettings, Scene};
use std::f64::consts::PI;
use std::path::Path;

/// A sphere of radius 1 on a floor 8 wide, scaled by `scale` and moved by `offset`, as OBJ.
fn write_model(path: &Path, scale: f64, offset: f64) {
    let (rings, segments) = (16, 32);
    let mut text = String::new();
    let mut vertex = |x: f64, y: f64, z: f64| {
        let [x, y, z] = [x, y, z].map(|c| c * scale + offset);
        text.push_str(&format!("v {x:.15e} {y:.15e} {z:.15e}\n"));
    };
    for i in 1..rings {
        let theta = PI * i as f64 / rings as f64;
        for j in 0..segments {
            let phi = 2.0 * PI * j as f64 / segments as f64;
            vertex(
                theta.sin() * phi.cos(),
                theta.cos(),
                theta.sin() * phi.sin(),
            );
        }
    }
    vertex(0.0, 1.0, 0.0);
    vertex(0.0, -1.0, 0.0);
    for (x, z) in [(-4.0, -4.0), (4.0, -4.0), (4.0, 4.0), (-4.0, 4.0)] {
        vertex(x, -1.0, z);
    }
    let at = |i: usize, j: usize| 1 + (i - 1) * segments + j % segments;
    let (top, bottom, floor) = (
        1 + (rings - 1) * segments,
        2 + (rings - 1) * segments,
        3 + (rings - 1) * segments,
    );
    for j in 0..segments {
        text.push_str(&format!("f {top} {} {}\n", at(1, j + 1), at(1, j)));
        text.push_str(&format!(
            "f {bottom} {} {}\n",
            at(rings - 1, j),
            at(rings - 1, j + 1)
        ));
        for i in 1..rings - 1 {
            let (a, b, c, d) = (at(i, j), at(i, j + 1), at(i + 1, j), at(i + 1, j + 1));
            text.push_str(&format!("f {a} {b} {d}\nf {a} {d} {c}\n"));
        }
    }
    text.push_str(&format!(
        "f {} {} {}\nf {} {} {}\n",
        floor,
        floor + 2,
        floor + 1,
        floor,
        floor + 3,
        floor + 2
    ));
    std::fs::write(path, text).unwrap();
}

fn load(dir: &Path, name: &str, scale: f64, offset: f64) -> Scene {
    let path = dir.join(name);
    write_model(&path, scale, offset);
    load_scene_with_report(&path, 1.0).unwrap().0
}

/// The mean of every pixel's mean, over all channels, after one pass.
fn mean_brightness(scene: &Scene) -> f64 {
    let (w, h) = (48, 48);
    let spec = PassSpec {
        index: 0,
        samples_per_pixel: 8,
        seed: 3,
    };
    let mut film = Film::new(w, h).unwrap();
    for task in pass_tasks(w, h, 16, &spec, None).unwrap() {
        film.merge(&render_tile(scene, &RenderSettings::default(), &task))
            .unwrap();
    }
    let sum: f64 = film
        .pixels()
        .iter()
        .map(|p| p.mean.iter().sum::<f64>())
        .sum();
    sum / (3 * w * h) as f64
}

#[test]
fn a_model_a_millionth_of_the_size_renders_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let unit = mean_brightness(&load(dir.path(), "unit.obj", 1.0, 0.0));
    let tiny = mean_brightness(&load(dir.path(), "tiny.obj", 1e-6, 0.0));
    assert!(unit > 0.0);
    // The same picture but for rounding: rays from the tiny model's surfaces used to jump
    // over them (a tenth darker, the lower half of the sphere missing).
    assert!(
        (tiny - unit).abs() < 0.01 * unit,
        "unit {unit}, a millionth {tiny}"
    );
}

/// From 1e-12 to 1e10 units across: the same picture. At the ends, squares of lengths leave
/// f32's range (a 1e10 model's light, whose edges' cross product is 1e20, went dark; a
/// triangle of 1e-12 counted as degenerate) and the default camera's framing had a floor.
#[test]
fn models_of_any_size_f32_can_trace_render_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let unit = mean_brightness(&load(dir.path(), "unit.obj", 1.0, 0.0));
    for scale in [1e-12, 1e-9, 1e5, 1e10] {
        let name = format!("m{scale:e}.obj");
        let other = mean_brightness(&load(dir.path(), &name, scale, 0.0));
        assert!(
            (other - unit).abs() < 0.01 * unit,
            "unit {unit}, {scale} {other}"
        );
    }
    // Past 1e12 units the ray-triangle test would overflow: refused, saying so.
    let path = dir.path().join("huge.obj");
    write_model(&path, 1e13, 0.0);
    let err = load_scene_with_report(&path, 1.0).err().expect("refused");
    assert!(err.to_string().contains("scale it down"), "{err}");
}

/// A scene of built-in shapes — a box on a floor under a square light — with every length
/// scaled by `scale` through the shapes' transforms, as a scene file.
fn builtin_scene(dir: &Path, scale: f64) -> Scene {
    let s = |v: f64| format!("{:e}", v * scale);
    let text = format!(
        "[camera]\nposition = [{}, {}, {}]\nlook_at = [0, {}, 0]\nvfov_degrees = 40\n\
         [[materials]]\nname = \"grey\"\ntype = \"lambertian\"\nalbedo = [0.5, 0.5, 0.5]\n\
         [[meshes]]\nname = \"box\"\nshape = \"box\"\n\
         [[meshes]]\nname = \"floor\"\nshape = \"quad\"\n\
         [[instances]]\nmesh = \"box\"\nmaterial = \"grey\"\n\
         transform = {{ scale = {}, rotate = [{{ axis = [0, 1, 0], degrees = 30 }}], translate = [0, {}, 0] }}\n\
         [[instances]]\nmesh = \"floor\"\nmaterial = \"grey\"\n\
         transform = {{ scale = {} }}\n\
         [[lights]]\ncorner = [{}, {}, {}]\nedge_a = [{}, 0, 0]\nedge_b = [0, 0, {}]\n\
         radiance = [5, 5, 5]\n",
        s(1.0),
        s(1.5),
        s(4.0),
        s(0.5),
        s(1.0),
        s(0.5),
        s(8.0),
        s(-1.0),
        s(3.0),
        s(-1.0),
        s(2.0),
        s(2.0),
    );
    let path = dir.join(format!("box{scale:e}.toml"));
    std::fs::write(&path, text).unwrap();
    load_scene_with_report(&path, 1.0)
        .unwrap_or_else(|e| panic!("{scale}: {e}"))
        .0
}

/// Built-in shapes scaled through their transforms: the same picture from a scale of 1e-12 to
/// 1e10. A transform's determinant (the cube of the scale) used to be held against a fixed
/// floor, which refused a uniform scale below about 1e-10.
#[test]
fn built_in_shapes_of_any_size_render_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let unit = mean_brightness(&builtin_scene(dir.path(), 1.0));
    assert!(unit > 0.0);
    for scale in [1e-12, 1e-6, 1e5, 1e10] {
        let other = mean_brightness(&builtin_scene(dir.path(), scale));
        assert!(
            (other - unit).abs() < 0.01 * unit,
            "unit {unit}, {scale} {other}"
        );
    }
}

#[test]
fn a_model_far_from_the_origin_for_its_size_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        load(dir.path(), "near.obj", 1.0, 0.0).precision_warning(),
        None
    );
    assert_eq!(
        load(dir.path(), "tiny.obj", 1e-6, 0.0).precision_warning(),
        None
    );
    assert_eq!(
        load(dir.path(), "moved.obj", 1.0, 1e3).precision_warning(),
        None
    );
    let far = load(dir.path(), "far.obj", 1.0, 1e6).precision_warning();
    let said = far.expect("a model a few units across a million units out is flagged");
    assert!(
        said.contains(" units across but lies 10000") && said.contains("move it near the origin"),
        "{said}"
    );
    // The size said is the scene's own, the same as near the origin: not the hit bounds, whose
    // margin for rounding grows with the distance (20 units here).
    let near = load(dir.path(), "near.obj", 1.0, 0.0);
    let (lo, hi) = near.geometry.placed_bounds();
    let size = (hi - lo).max_component();
    let said_size: f32 = said
        .strip_prefix("the scene (lights included) is ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        (said_size - size).abs() < 0.2,
        "{said}: near the origin it is {size}"
    );
    // The spacing of f32 values between 2^19 and 2^20 is 2^-4.
    assert!(said.contains("steps of about 6.25e-2"), "{said}");
    assert_eq!(prism_tracer::cornell_box().precision_warning(), None);
}
