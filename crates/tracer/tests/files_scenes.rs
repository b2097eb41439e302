//! Scene files: the shipped example loads, a scene file round-trips to the scene it
//! describes, errors name the key path and line, and a bare mesh file becomes a framed scene.

use prism_tracer::material::Material;
use prism_tracer::scene_file::{
    load_scene, load_scene_with_report, parse_scene_description, read_scene_description,
    scene_from_toml_str, SceneFileError,
};
use prism_tracer::{Transform, Vec3};
use std::path::{Path, PathBuf};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenes/example.toml")
}

fn close(a: Vec3, b: Vec3) -> bool {
    (a - b).length() < 1e-4
}

#[test]
fn the_example_scene_loads() {
    let (scene, warnings) = load_scene_with_report(&example(), 16.0 / 9.0).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // Five named materials plus one for the [[lights]] quad.
    assert_eq!(scene.materials.len(), 6);
    assert_eq!(
        scene.materials[3],
        Material::Dielectric { ior: 1.5 },
        "materials keep file order"
    );
    // Six instances plus the area light.
    assert_eq!(scene.geometry.instances().len(), 7);
    // The light quad (2 triangles) and the emissive lamp sphere (20 * 4^4 triangles).
    assert_eq!(scene.light_count(), 2 + 20 * 256);
    assert_eq!(scene.camera.vfov_degrees, 40.0);
}

const BASE: &str = r#"
background = [0.1, 0.2, 0.3]

[camera]
position = [1, 2, 10]
look_at = [1, 2, 0]
vfov_degrees = 30

[[materials]]
name = "matte"
type = "lambertian"
albedo = [0.5, 0.25, 1]

[[materials]]
name = "glow"
type = "emissive"
radiance = [3, 2, 1]

[[meshes]]
name = "tri"
file = "tri.obj"

[[meshes]]
name = "unused"
file = "does-not-exist.ply"

[[instances]]
mesh = "tri"
material = "matte"
[instances.transform]
scale = 2
rotate = [{ axis = [0, 0, 1], degrees = 90 }]
translate = [10, 0, 0]

[[instances]]
mesh = "tri"
material = "glow"
transform = { matrix = [[1, 0, 0, 5], [0, 1, 0, 6], [0, 0, 1, 7]] }

[[lights]]
corner = [0, 5, 0]
edge_a = [1, 0, 0]
edge_b = [0, 0, 1]
radiance = [7, 7, 7]
"#;

fn scene_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tri.obj"),
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_scene_file_round_trips_to_its_scene() {
    let dir = scene_dir();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, BASE).unwrap();
    let d = read_scene_description(&path, 1.0).unwrap();

    assert_eq!(d.camera.position, Vec3::new(1.0, 2.0, 10.0));
    assert_eq!(d.camera.look_at, Vec3::new(1.0, 2.0, 0.0));
    assert_eq!(d.camera.up, Vec3::new(0.0, 1.0, 0.0), "default up");
    assert_eq!(d.background, Vec3::new(0.1, 0.2, 0.3));
    assert_eq!(
        d.materials,
        vec![
            Material::Lambertian {
                albedo: Vec3::new(0.5, 0.25, 1.0)
            },
            Material::Emissive {
                radiance: Vec3::new(3.0, 2.0, 1.0)
            },
            Material::Emissive {
                radiance: Vec3::splat(7.0)
            },
        ]
    );
    // The unused mesh is not read (its file does not exist) but is reported.
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(
        d.warnings[0].contains("meshes[1] (`unused`)"),
        "{:?}",
        d.warnings
    );
    // The triangle file, then the light quad.
    assert_eq!(d.meshes.len(), 2);
    assert_eq!(d.meshes[0].triangle_count(), 1);
    assert_eq!(d.instances.len(), 3);
    let [a, b, c] = [0, 1, 2].map(|i| (d.instances[i].mesh, d.instances[i].material));
    assert_eq!((a, b, c), ((0, 0), (0, 1), (1, 2)));

    // Scale, then rotate, then translate: x -> 2x -> 2y -> 2y + (10, 0, 0).
    let t = d.instances[0].transform;
    assert!(close(
        t.point(Vec3::new(1.0, 0.0, 0.0)),
        Vec3::new(10.0, 2.0, 0.0)
    ));
    assert!(close(
        t.inverse_point(Vec3::new(10.0, 2.0, 0.0)),
        Vec3::new(1.0, 0.0, 0.0)
    ));
    let m = d.instances[1].transform;
    assert_eq!(m, Transform::translate(Vec3::new(5.0, 6.0, 7.0)));
    // The light quad is in world coordinates with an identity transform.
    assert!(d.instances[2].transform.is_identity());
    let light = &d.meshes[1];
    assert_eq!(
        light.bounds(),
        Some((Vec3::new(0.0, 5.0, 0.0), Vec3::new(1.0, 5.0, 1.0)))
    );

    let scene = d.build(&path).unwrap();
    assert_eq!(scene.camera.vfov_degrees, 30.0);
    assert_eq!(scene.background(), Vec3::new(0.1, 0.2, 0.3));
    // The emissive triangle instance and the two triangles of the light quad.
    assert_eq!(scene.light_count(), 3);
    assert!((scene.light_area() - 1.5).abs() < 1e-6);
    let world = scene.geometry.world_triangle(0, 0);
    assert!(close(world[1], Vec3::new(10.0, 2.0, 0.0)), "{world:?}");
}

/// Replaces `from` (which must occur) by `to` in the base scene and returns the error text.
fn error_after(from: &str, to: &str) -> (SceneFileError, String) {
    assert!(BASE.contains(from), "{from}");
    let dir = scene_dir();
    let text = BASE.replacen(from, to, 1);
    let path = dir.path().join("scene.toml");
    std::fs::write(&path, &text).unwrap();
    let err = match load_scene(&path, 1.0) {
        Ok(_) => panic!("`{to}` was accepted"),
        Err(e) => e,
    };
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}: ", path.display())),
        "{shown}"
    );
    assert!(!shown.contains('\n'), "{shown}");
    // Report the message relative to the scene file to keep the expectations short.
    let rest = shown[path.display().to_string().len() + 2..].to_string();
    (err, rest)
}

#[test]
fn errors_name_the_key_path_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        // Unknown keys, at any depth.
        (
            "scale = 2",
            "scael = 2",
            "line 31: instances[0].transform.scael: unknown field `scael`",
        ),
        (
            "degrees = 90",
            "degrees = 90, angle = 1",
            "line 32: instances[0].transform.rotate[0].angle: unknown field `angle`",
        ),
        (
            "background =",
            "backgruond =",
            "line 2: backgruond: unknown field",
        ),
        (
            "radiance = [7, 7, 7]",
            "radiance = [7, 7, 7]\nshape = \"quad\"",
            "lights[0].shape: unknown field `shape`",
        ),
        // Missing fields and wrong types.
        (
            "vfov_degrees = 30",
            "",
            "camera: missing field `vfov_degrees`",
        ),
        (
            "mesh = \"tri\"\nmaterial = \"matte\"",
            "material = \"matte\"",
            "instances[0]: missing field `mesh`",
        ),
        (
            "albedo = [0.5, 0.25, 1]",
            "albedo = \"blue\"",
            "line 12: materials[0].albedo: invalid type: string \"blue\"",
        ),
        (
            "position = [1, 2, 10]",
            "position = [1, 2]",
            "line 5: camera.position: invalid length 2",
        ),
        (
            "type = \"emissive\"",
            "type = \"glowing\"",
            "materials[1].type: unknown variant `glowing`",
        ),
        (
            "radiance = [3, 2, 1]",
            "",
            "materials[1].radiance: missing field `radiance` (required by type = \"emissive\")",
        ),
        (
            "albedo = [0.5, 0.25, 1]",
            "albedo = [0.5, 0.25, 1]\nior = 1.3",
            "materials[0].ior: not a parameter of type = \"lambertian\"",
        ),
        // Values out of range and references that do not resolve.
        (
            "albedo = [0.5, 0.25, 1]",
            "albedo = [0.5, 0.25, 2]",
            "materials[0].albedo: Lambertian albedo",
        ),
        (
            "material = \"glow\"",
            "material = \"glo\"",
            "instances[1].material: no material named `glo` (materials: `matte`, `glow`)",
        ),
        (
            "mesh = \"tri\"\nmaterial = \"glow\"",
            "mesh = \"triangle\"\nmaterial = \"glow\"",
            "instances[1].mesh: no mesh named `triangle`",
        ),
        ("scale = 2", "scale = 0", "instances[0].transform.scale: "),
        (
            "axis = [0, 0, 1]",
            "axis = [0, 0, 0]",
            "instances[0].transform.rotate[0]: the axis must be finite and non-zero",
        ),
        (
            "[0, 0, 1, 7]]",
            "[0, 0, 0, 7]]",
            "instances[1].transform.matrix: singular",
        ),
        (
            "edge_b = [0, 0, 1]",
            "edge_b = [2, 0, 0]",
            "lights[0]: corner, edge_a and edge_b must be finite",
        ),
        (
            "look_at = [1, 2, 0]",
            "look_at = [1, 2, 10]",
            "camera: camera look_at",
        ),
        (
            "name = \"glow\"",
            "name = \"matte\"",
            "materials[1].name: duplicate material name `matte`",
        ),
        // TOML itself.
        ("[camera]", "[camera", "line 4: unclosed table"),
    ];
    for (from, to, expected) in cases {
        let (_, shown) = error_after(from, to);
        assert!(
            shown.contains(expected),
            "`{from}` -> `{to}`:\n got: {shown}\nwant: {expected}"
        );
    }
}

#[test]
fn missing_and_broken_mesh_files_name_the_scene_the_key_and_the_mesh_file() {
    let (err, shown) = error_after("file = \"tri.obj\"", "file = \"tri2.obj\"");
    assert!(matches!(err, SceneFileError::Mesh { .. }), "{err:?}");
    assert!(shown.starts_with("line 21: meshes[0].file: "), "{shown}");
    assert!(shown.contains("tri2.obj: cannot read"), "{shown}");

    let dir = scene_dir();
    std::fs::write(dir.path().join("bad.obj"), "v 0 0 0\nf 1 2 3\n").unwrap();
    let text = BASE.replace("tri.obj", "bad.obj");
    let err = match parse_scene_description(&text, dir.path(), Path::new("s.toml")) {
        Ok(_) => panic!("a broken mesh file was accepted"),
        Err(e) => e,
    };
    let shown = err.to_string();
    assert!(
        shown.starts_with("s.toml: line 21: meshes[0].file: "),
        "{shown}"
    );
    assert!(shown.contains("bad.obj: line 2: "), "{shown}");
}

#[test]
fn a_scene_needs_something_to_render() {
    let text = "[camera]\nposition = [0, 0, 1]\nlook_at = [0, 0, 0]\nvfov_degrees = 40\n";
    let Err(err) = scene_from_toml_str(text, Path::new(".")) else {
        panic!("an empty scene was accepted");
    };
    assert!(err.to_string().contains("no instances"), "{err}");
    // Geometry without any light is allowed, with a warning.
    let text = format!(
        "{text}[[materials]]\nname = \"m\"\ntype = \"mirror\"\nreflectance = [1, 1, 1]\n\
         [[meshes]]\nname = \"q\"\nshape = \"quad\"\n[[instances]]\nmesh = \"q\"\nmaterial = \"m\"\n"
    );
    let d = parse_scene_description(&text, Path::new("."), Path::new("t.toml")).unwrap();
    assert!(d.warnings[0].contains("no light"), "{:?}", d.warnings);
}

#[test]
fn a_mesh_file_becomes_a_framed_lit_scene() {
    let cube = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cube.obj");
    for aspect in [0.5f32, 1.0, 2.5] {
        let d = read_scene_description(&cube, aspect).unwrap();
        let scene = d.clone().build(&cube).unwrap();
        assert_eq!(scene.light_count(), 2);
        assert_eq!(scene.materials.len(), 2);
        let cam = d.camera;
        assert_eq!(cam.look_at, Vec3::splat(0.5));
        // Every corner of the cube is inside the image, horizontally and vertically.
        let forward = (cam.look_at - cam.position).normalize();
        let right = forward.cross(cam.up).normalize();
        let up = right.cross(forward);
        let tan_v = (cam.vfov_degrees.to_radians() * 0.5).tan();
        for p in &d.meshes[0].positions {
            let v = *p - cam.position;
            let depth = v.dot(forward);
            assert!(depth > 0.0);
            assert!((v.dot(up) / depth).abs() < tan_v, "aspect {aspect}: {p:?}");
            assert!(
                (v.dot(right) / depth).abs() < tan_v * aspect,
                "aspect {aspect}: {p:?}"
            );
        }
        // The light is above the mesh.
        let (light_lo, _) = d.meshes[1].bounds().unwrap();
        assert!(light_lo.y > 1.0);
    }
    // A broken mesh file reports itself, without a scene around it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.stl");
    std::fs::write(&bad, "solid x\nfacet normal 0 0 1\n").unwrap();
    let Err(err) = load_scene(&bad, 1.0) else {
        panic!("a broken STL was accepted");
    };
    assert!(matches!(err, SceneFileError::MeshFile(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: line 2, facet 0: ", bad.display())),
        "{err}"
    );
    for mesh in ["cube_le.ply", "cube_binary.stl"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(mesh);
        assert!(load_scene(&path, 1.0).is_ok(), "{mesh}");
    }
}

#[test]
fn other_files_are_refused_clearly() {
    let Err(err) = load_scene(Path::new("picture.png"), 1.0) else {
        panic!("a PNG was accepted as a scene");
    };
    assert!(matches!(err, SceneFileError::UnsupportedFile { .. }));
    assert!(
        err.to_string().starts_with("picture.png: not a scene"),
        "{err}"
    );
    let Err(err) = load_scene(Path::new("/nonexistent/s.toml"), 1.0) else {
        panic!("a missing scene file was accepted");
    };
    assert!(
        err.to_string()
            .starts_with("/nonexistent/s.toml: cannot read"),
        "{err}"
    );
    let cube = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cube.obj");
    let Err(err) = load_scene(&cube, 0.0) else {
        panic!("a zero aspect ratio was accepted");
    };
    assert!(err.to_string().contains("aspect"), "{err}");
}

/// A FIFO named as a mesh used to hang the load until some writer came, and `/dev/zero` to be
/// read until memory ran out; both by a scene file's `file = ...` and as the scene itself
/// (`prism render mesh.obj`).
#[cfg(unix)]
#[test]
fn mesh_files_that_are_not_regular_files_are_refused_unread() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = scene_dir();
    let fifo = dir.path().join("fifo.obj");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    // A writer of a good mesh, so that a read of the FIFO would end (and load) rather than
    // hang the test.
    let writer = std::thread::spawn({
        let fifo = fifo.clone();
        move || std::fs::write(fifo, "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    });
    let scene = dir.path().join("scene.toml");
    std::fs::write(&scene, BASE.replace("tri.obj", "fifo.obj")).unwrap();
    let said = match load_scene(&scene, 1.0) {
        Ok(_) => "accepted".to_string(),
        Err(e) => e.to_string(),
    };
    // The writer's open waits for a reader; this one does not wait for a writer.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let _ = writer.join().unwrap();
    assert_eq!(
        said,
        format!(
            "{}: line 21: meshes[0].file: {}: is a FIFO (named pipe), not a regular file",
            scene.display(),
            fifo.display()
        )
    );

    for (name, device, kind) in [
        ("null.obj", "/dev/null", "a character device"),
        ("zero.stl", "/dev/zero", "a character device"),
        ("dir.ply", ".", "a directory"),
    ] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(device, &link).unwrap();
        let Err(err) = read_scene_description(&link, 1.0) else {
            panic!("{name}: accepted");
        };
        assert!(matches!(err, SceneFileError::MeshFile(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}: is {kind}, not a regular file", link.display())
        );
    }
    // The scene file itself, likewise.
    for (name, device, kind) in [
        ("zero.toml", "/dev/zero", "a character device"),
        ("fifo.toml", fifo.to_str().unwrap(), "a FIFO (named pipe)"),
        ("dir.toml", ".", "a directory"),
    ] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(device, &link).unwrap();
        let Err(err) = read_scene_description(&link, 1.0) else {
            panic!("{name}: accepted");
        };
        assert!(matches!(err, SceneFileError::Io { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}: is {kind}, not a regular file", link.display())
        );
    }
    let missing = dir.path().join("missing.toml");
    let err = read_scene_description(&missing, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{err}"
    );
}
