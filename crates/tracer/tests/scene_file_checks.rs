//! Scene files check every value: arrays of the wrong length either way, numbers f32 cannot
//! hold, transforms that flatten space; errors name the key and the key's own line; scenes and
//! mesh files of any size that f32 holds are framed and accepted.

use prism_tracer::scene_file::{parse_scene_description, read_scene_description};
use prism_tracer::Vec3;
use std::path::Path;

/// Every fixed-size array the format has, each on a line of its own (numbered on the right).
const BASE: &str = r#"background = [0.1, 0.2, 0.3]
[camera]
position = [0, 1, 5]
look_at = [0, 0.5, 0]
up = [0, 1, 0]
vfov_degrees = 40
[[materials]]
name = "a"
type = "lambertian"
albedo = [0.5, 0.5, 0.5]
[[materials]]
name = "e"
type = "emissive"
radiance = [1, 1, 1]
[[materials]]
name = "m"
type = "mirror"
reflectance = [0.9, 0.9, 0.9]
[[meshes]]
name = "q"
shape = "quad"
[[instances]]
mesh = "q"
material = "a"
[instances.transform]
scale = [1, 2, 1]
rotate = [{ axis = [0, 1, 0], degrees = 30 }]
translate = [0, 1, 0]
[[instances]]
mesh = "q"
material = "m"
transform = { matrix = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]] }
[[lights]]
corner = [0, 3, 0]
edge_a = [1, 0, 0]
edge_b = [0, 0, 1]
radiance = [5, 5, 5]
"#;

/// The error for `BASE` with `from` (which must occur once) replaced by `to`, as displayed.
fn error_after(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from}");
    let text = BASE.replacen(from, to, 1);
    match parse_scene_description(&text, Path::new("."), Path::new("s.toml")) {
        Ok(_) => panic!("`{to}` was accepted"),
        Err(e) => e.to_string(),
    }
}

/// Each `(from, to, want)`: BASE with `from` replaced by `to` is refused with an error that
/// begins `s.toml: {want}`.
fn expect_errors(cases: &[(&str, &str, &str)]) {
    for (from, to, want) in cases {
        let got = error_after(from, to);
        assert!(
            got.starts_with(&format!("s.toml: {want}")),
            "`{to}`:\n got: {got}\nwant: s.toml: {want}"
        );
    }
}

#[test]
fn the_base_scene_is_valid() {
    parse_scene_description(BASE, Path::new("."), Path::new("s.toml")).unwrap();
}

#[test]
fn arrays_with_extra_elements_are_refused_at_their_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "background = [0.1, 0.2, 0.3]",
            "background = [0.1, 0.2, 0.3, 1]",
            "line 1: background: invalid length 4",
        ),
        (
            "position = [0, 1, 5]",
            "position = [0, 1, 5, 1]",
            "line 3: camera.position: invalid length 4",
        ),
        (
            "look_at = [0, 0.5, 0]",
            "look_at = [0, 0.5, 0, 0, 0]",
            "line 4: camera.look_at: invalid length 5",
        ),
        (
            "up = [0, 1, 0]",
            "up = [0, 1, 0, 0]",
            "line 5: camera.up: invalid length 4",
        ),
        (
            "albedo = [0.5, 0.5, 0.5]",
            "albedo = [0.5, 0.5, 0.5, \"rgba\"]",
            "line 10: materials[0].albedo: invalid length 4, expected an array of length 3",
        ),
        (
            "radiance = [1, 1, 1]",
            "radiance = [1, 1, 1, 1]",
            "line 14: materials[1].radiance: invalid length 4",
        ),
        (
            "reflectance = [0.9, 0.9, 0.9]",
            "reflectance = [0.9, 0.9, 0.9, 0.9]",
            "line 18: materials[2].reflectance: invalid length 4",
        ),
        (
            "scale = [1, 2, 1]",
            "scale = [1, 2, 1, 1]",
            "line 26: instances[0].transform.scale: invalid length 4",
        ),
        (
            "axis = [0, 1, 0]",
            "axis = [0, 1, 0, 0]",
            "line 27: instances[0].transform.rotate[0].axis: invalid length 4",
        ),
        (
            "translate = [0, 1, 0]",
            "translate = [0, 1, 0, 0]",
            "line 28: instances[0].transform.translate: invalid length 4",
        ),
        (
            "[1, 0, 0, 0], [0, 1, 0, 0]",
            "[1, 0, 0, 0, 9], [0, 1, 0, 0]",
            "line 32: instances[1].transform.matrix[0]: invalid length 5, expected an array \
             of length 4",
        ),
        (
            "[0, 0, 1, 0]]",
            "[0, 0, 1, 0], [0, 0, 0, 1]]",
            "line 32: instances[1].transform.matrix: invalid length 4, expected an array of \
             length 3",
        ),
        (
            "corner = [0, 3, 0]",
            "corner = [0, 3, 0, 1]",
            "line 34: lights[0].corner: invalid length 4",
        ),
        (
            "edge_a = [1, 0, 0]",
            "edge_a = [1, 0, 0, 1]",
            "line 35: lights[0].edge_a: invalid length 4",
        ),
        (
            "edge_b = [0, 0, 1]",
            "edge_b = [0, 0, 1, 1]",
            "line 36: lights[0].edge_b: invalid length 4",
        ),
        (
            "radiance = [5, 5, 5]",
            "radiance = [5, 5, 5, 5]",
            "line 37: lights[0].radiance: invalid length 4",
        ),
        // Short arrays still are refused as before.
        (
            "edge_b = [0, 0, 1]",
            "edge_b = [0, 0]",
            "line 36: lights[0].edge_b: invalid length 2",
        ),
    ];
    expect_errors(cases);
}

#[test]
fn numbers_outside_f32_are_quoted_not_turned_into_inf_or_zero() {
    let got = error_after("position = [0, 1, 5]", "position = [0, 1, 1e39]");
    assert_eq!(
        got,
        "s.toml: line 3: camera.position[2]: 1e39 is too large for 32-bit floats (at most \
         about 3.4e38)"
    );
    let got = error_after("degrees = 30", "degrees = -1e300");
    assert!(
        got.starts_with(
            "s.toml: line 27: instances[0].transform.rotate[0].degrees: -1e300 is too large"
        ),
        "{got}"
    );
    let got = error_after("scale = [1, 2, 1]", "scale = 1e-50");
    assert!(
        got.starts_with("s.toml: line 26: instances[0].transform.scale: 1e-50 is too small"),
        "{got}"
    );
    let got = error_after("vfov_degrees = 40", "vfov_degrees = 1e40");
    assert!(
        got.starts_with("s.toml: line 6: camera.vfov_degrees: 1e40 is too large"),
        "{got}"
    );
}

#[test]
fn value_errors_point_at_the_key_not_its_table() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "albedo = [0.5, 0.5, 0.5]",
            "albedo = [1.5, 0.5, 0.5]",
            "line 10: materials[0].albedo: Lambertian albedo",
        ),
        (
            "radiance = [5, 5, 5]",
            "radiance = [-5, 5, 5]",
            "line 37: lights[0].radiance: ",
        ),
        (
            "look_at = [0, 0.5, 0]",
            "look_at = [0, 1, 5]",
            "line 4: camera: camera look_at [0.0, 1.0, 5.0] coincides with its position",
        ),
        (
            "up = [0, 1, 0]",
            "up = [0, 0, 0]",
            "line 5: camera: camera up [0.0, 0.0, 0.0] is zero",
        ),
        (
            "vfov_degrees = 40",
            "vfov_degrees = 180",
            "line 6: camera: camera vfov_degrees is 180",
        ),
        (
            "material = \"m\"",
            "material = \"n\"",
            "line 31: instances[1].material: no material named `n`",
        ),
        (
            "scale = [1, 2, 1]",
            "scale = [1, 0, 1]",
            "line 26: instances[0].transform.scale: [1.0, 0.0, 1.0]: every factor must be \
             finite and non-zero",
        ),
        (
            "[0, 0, 1, 0]]",
            "[0, 0, 0, 0]]",
            "line 32: instances[1].transform.matrix: singular",
        ),
        (
            "name = \"m\"",
            "name = \"a\"",
            "line 16: materials[2].name: duplicate material name `a`",
        ),
    ];
    expect_errors(cases);
}

/// Whether a transform can be inverted does not depend on its size: a model in picometres
/// (a uniform scale of 1e-12) is as regular as one in metres. What is refused is a transform
/// that flattens space (one direction squashed to 1e-31 of the others), or one whose inverse
/// single precision cannot hold.
#[test]
fn a_transform_is_refused_for_flattening_space_not_for_its_size() {
    for (from, ok) in [
        ("scale = [1, 2, 1]", "scale = 1e-12"),
        ("scale = [1, 2, 1]", "scale = 1e-30"),
        ("scale = [1, 2, 1]", "scale = [1e12, 1e12, 1e-12]"),
        ("scale = [1, 2, 1]", "scale = [1e-12, 1, 1]"),
        ("[[1, 0, 0, 0]", "[[1e-12, 0, 0, 0]"),
        (
            "matrix = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]",
            "matrix = [[1e-20, 0, 0, 0], [0, 1e-20, 0, 0], [0, 0, 1e-20, 0]]",
        ),
    ] {
        let text = BASE.replacen(from, ok, 1);
        parse_scene_description(&text, Path::new("."), Path::new("s.toml"))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let got = error_after("scale = [1, 2, 1]", "scale = [1e-3, 1e-3, 1e-34]");
    assert_eq!(
        got,
        "s.toml: line 26: instances[0].transform.scale: [0.001, 0.001, 1e-34]: the factors \
         multiply to only 1.0e-31 times the cube of the largest (at least 1e-30 is needed), so \
         they flatten space too nearly to invert"
    );
    let got = error_after("scale = [1, 2, 1]", "scale = 1e-39");
    assert!(
        got.starts_with("s.toml: line 26: instances[0].transform.scale: [1e-39, 1e-39, 1e-39]: "),
        "{got}"
    );
    assert!(
        got.contains("beyond single precision's range: every factor must be at least about 3e-39"),
        "{got}"
    );
    let got = error_after("matrix = [[1, 0, 0, 0]", "matrix = [[1e-31, 0, 0, 0]");
    assert_eq!(
        got,
        "s.toml: line 32: instances[1].transform.matrix: singular: its determinant is only \
         1.0e-31 times the cube of its longest row's length (at least 1e-30 is needed), so it \
         flattens space too nearly to invert"
    );
    // Rows nearly parallel: as flat at a small size as at a large one.
    let got = error_after(
        "matrix = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]",
        "matrix = [[1e-12, 0, 0, 0], [1e-12, 1e-43, 0, 0], [0, 0, 1e-12, 0]]",
    );
    assert!(
        got.contains("matrix: singular: its determinant is only "),
        "{got}"
    );
    // A tiny scale moved far for its size: the inverse's translation leaves f32's range.
    let text = BASE
        .replacen("scale = [1, 2, 1]", "scale = 1e-30", 1)
        .replacen("translate = [0, 1, 0]", "translate = [0, 1e10, 0]", 1);
    let got = match parse_scene_description(&text, Path::new("."), Path::new("s.toml")) {
        Ok(_) => panic!("a scale of 1e-30 moved by 1e10 was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        got.starts_with("s.toml: line 28: instances[0].transform.translate: this moves the model"),
        "{got}"
    );
}

#[test]
fn duplicate_keys_are_named() {
    let got = error_after("vfov_degrees = 40", "vfov_degrees = 40\nvfov_degrees = 50");
    assert!(
        got.starts_with("s.toml: line 7: duplicate key `vfov_degrees`"),
        "{got}"
    );
    let got = error_after("[camera]", "[camera]\n[camera]");
    assert!(
        got.starts_with("s.toml: line 3: duplicate key `camera`"),
        "{got}"
    );
}

#[test]
fn a_scene_file_that_is_not_utf8_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    let mut bytes = BASE.as_bytes().to_vec();
    let at = BASE.find("[[meshes]]").unwrap();
    bytes.splice(at..at, b"# caf\xe9\n".iter().copied());
    std::fs::write(&path, &bytes).unwrap();
    let got = read_scene_description(&path, 1.0).unwrap_err().to_string();
    assert_eq!(
        got,
        format!(
            "{}: line 19: byte offset {}: the file is not UTF-8 text",
            path.display(),
            at + 5
        )
    );
}

#[test]
fn a_camera_a_millionth_of_a_unit_from_what_it_sees_is_accepted() {
    let text = BASE
        .replacen("position = [0, 1, 5]", "position = [0, 1.5e-7, 5e-7]", 1)
        .replacen("look_at = [0, 0.5, 0]", "look_at = [0, 5e-8, 0]", 1);
    let d = parse_scene_description(&text, Path::new("."), Path::new("s.toml")).unwrap();
    assert_eq!(d.camera.look_at, Vec3::new(0.0, 5e-8, 0.0));
}

/// Writes a triangular prism `size` across at `offset` and frames it for a square image.
fn framed_prism(size: f32, offset: f32) -> prism_tracer::scene_file::SceneDescription {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prism.obj");
    let mut obj = String::new();
    for (x, y, z) in [
        (-0.5, 0.0, -0.5),
        (0.5, 0.0, -0.5),
        (0.0, 0.866, -0.5),
        (-0.5, 0.0, 0.5),
        (0.5, 0.0, 0.5),
        (0.0, 0.866, 0.5),
    ] {
        let v = |c: f32| c * size + offset;
        obj.push_str(&format!("v {:e} {:e} {:e}\n", v(x), v(y), v(z)));
    }
    obj.push_str("f 1 3 2\nf 4 5 6\nf 1 2 5 4\nf 2 3 6 5\nf 3 1 4 6\n");
    std::fs::write(&path, obj).unwrap();
    read_scene_description(&path, 1.0).unwrap_or_else(|e| panic!("size {size}: {e}"))
}

#[test]
fn mesh_files_of_any_size_are_framed_by_their_own_extent() {
    for size in [1e-20f32, 1e-9, 1e-8, 1.0, 1e9] {
        let d = framed_prism(size, 0.0);
        assert_eq!(d.meshes[0].triangle_count(), 8, "size {size}");
        let cam = d.camera;
        cam.validate().unwrap();
        // The camera stands a few model sizes away (not a floor of 1e-6 units) ...
        let distance = f64::from((cam.position - cam.look_at).length());
        let ratio = distance / f64::from(size);
        assert!(
            (2.0..6.0).contains(&ratio),
            "size {size}: distance {distance}"
        );
        // ... and every corner is in the image, seen the same way at every size.
        let unit = framed_prism(1.0, 0.0);
        for (p, q) in d.meshes[0].positions.iter().zip(&unit.meshes[0].positions) {
            let dir = |c: &prism_tracer::camera::Camera, p: Vec3| {
                let (p, e) = (p.to_array(), c.position.to_array());
                let v = [0, 1, 2].map(|i| f64::from(p[i]) - f64::from(e[i]));
                let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                Vec3::new((v[0] / l) as f32, (v[1] / l) as f32, (v[2] / l) as f32)
            };
            let (a, b) = (dir(&cam, *p), dir(&unit.camera, *q));
            assert!((a - b).length() < 1e-3, "size {size}: {a:?} vs {b:?}");
        }
        // The light is above the model, its size.
        let (lo, hi) = d.meshes[1].bounds().unwrap();
        assert!(
            lo.y > 0.866 * size && (hi.x - lo.x) < 3.0 * size,
            "size {size}"
        );
    }
}
