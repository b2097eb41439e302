//! The scene cache: a written and memory-mapped geometry answers exactly like the built one;
//! truncated, corrupt, foreign and wrong-version files are clear errors.

use prism_tracer::bench::{asteroid, icosphere, primary_rays, Rng};
use prism_tracer::cache::{ByteSource, CacheError};
use prism_tracer::geometry::{Geometry, Instance};
use prism_tracer::math::{Ray, Transform, Vec3};
use std::path::Path;
use std::sync::Arc;

fn scene() -> Geometry {
    let instances = vec![
        Instance {
            mesh: 0,
            material: 0,
            transform: Transform::IDENTITY,
        },
        Instance {
            mesh: 1,
            material: 1,
            transform: Transform::translate(Vec3::new(2.5, 0.0, 0.0)),
        },
        Instance {
            mesh: 1,
            material: 2,
            transform: Transform::translate(Vec3::new(-2.5, 0.3, 0.0))
                .then_after(&Transform::rotate(Vec3::new(0.0, 0.0, 1.0), 40.0).unwrap()),
        },
    ];
    Geometry::build(vec![asteroid(4), icosphere(3)], instances).unwrap()
}

fn test_rays(g: &Geometry) -> Vec<Ray> {
    let mut rays = primary_rays(g.bounds(), 10_000, 1);
    let mut rng = Rng::new(2);
    rays.extend((0..10_000).map(|_| Ray::new(rng.unit_vector() * 3.0, rng.unit_vector())));
    rays
}

fn same_answers(a: &Geometry, b: &Geometry) {
    let rays = test_rays(a);
    let mut hits = 0;
    for r in &rays {
        let h = a.intersect(r);
        assert_eq!(h, b.intersect(r), "{r:?}");
        assert_eq!(a.occluded(r), b.occluded(r), "{r:?}");
        hits += h.is_some() as usize;
    }
    assert!(hits > 2000, "only {hits} hits");
    assert_eq!(a.bounds(), b.bounds());
    assert_eq!(a.triangle_count(), b.triangle_count());
    assert_eq!(a.instances(), b.instances());
    assert_eq!(a.world_triangle(2, 100), b.world_triangle(2, 100));
}

#[test]
fn a_cache_file_loads_without_rebuilding_and_answers_identically() {
    let g = scene();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scene.prismgeo");
    g.write_cache(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), g.to_bytes());
    let loaded = Geometry::load_cache(&path).unwrap();
    same_answers(&g, &loaded);
    // Zero copy: the loaded geometry's arrays are the mapped file's bytes.
    assert_eq!(loaded.as_bytes(), g.as_bytes());
    // And from bytes owned by someone else.
    let shared = Geometry::from_bytes(Arc::new(g.to_bytes())).unwrap();
    same_answers(&g, &shared);
}

#[test]
fn a_cache_records_the_input_it_was_built_from() {
    let meshes = vec![asteroid(3), icosphere(2)];
    let place = |x: f32| Instance {
        mesh: 1,
        material: 0,
        transform: Transform::translate(Vec3::new(x, 0.0, 0.0)),
    };
    let instances = vec![place(1.0), place(-1.0)];
    let key = Geometry::input_key(&meshes, &instances);
    let g = Geometry::build(meshes.clone(), instances.clone()).unwrap();
    assert_eq!(g.source_key(), key);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scene.prismgeo");
    g.write_cache(&path).unwrap();
    assert_eq!(Geometry::load_cache(&path).unwrap().source_key(), key);

    // Any change to what would be built changes the key: a placement, a vertex, the meshes.
    let moved = vec![place(1.0), place(-1.5)];
    assert_ne!(Geometry::input_key(&meshes, &moved), key);
    let mut nudged = meshes.clone();
    nudged[0].positions[7].y += 1e-6;
    assert_ne!(Geometry::input_key(&nudged, &instances), key);
    assert_ne!(Geometry::input_key(&meshes[..1], &instances), key);
    // ... and the same input gives the same key (the key is a digest, not a build's count).
    assert_eq!(
        Geometry::input_key(&meshes.clone(), &instances.clone()),
        key
    );
}

fn load_err(bytes: &[u8], dir: &Path, name: &str) -> CacheError {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = Geometry::load_cache(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "{msg} does not name the file"
    );
    err
}

#[test]
fn damaged_files_are_clear_errors() {
    let g = scene();
    let good = g.to_bytes();
    let dir = tempfile::tempdir().unwrap();

    // A flipped byte anywhere in the payload (here in the BVH nodes, the triangles, the end).
    for at in [300, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        match load_err(&bad, dir.path(), "flipped") {
            CacheError::Checksum { part, .. } => assert_eq!(part, "payload"),
            e => panic!("byte {at}: {e}"),
        }
    }
    // A flipped byte in the header's section table.
    let mut bad = good.clone();
    bad[50] ^= 1;
    assert!(matches!(
        load_err(&bad, dir.path(), "header"),
        CacheError::Checksum { part: "header", .. }
    ));
    // Truncated anywhere.
    for len in [good.len() - 1, good.len() / 3, 100, 5] {
        let e = load_err(&good[..len], dir.path(), "short");
        assert!(matches!(e, CacheError::Truncated { .. }), "{len}: {e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
    // Empty (which has no first 8 bytes to be wrong), or not a cache at all.
    let e = load_err(&[], dir.path(), "empty");
    assert!(matches!(e, CacheError::Empty { .. }), "{e}");
    let empty = dir.path().join("empty");
    assert_eq!(
        e.to_string(),
        format!("{}: the file is empty", empty.display())
    );
    let e = load_err(b"ply\nformat ascii 1.0\n", dir.path(), "mesh.ply");
    assert!(matches!(e, CacheError::BadMagic { .. }), "{e}");
    // Another format version.
    let mut other = good.clone();
    other[8..12].copy_from_slice(&2u32.to_ne_bytes());
    match load_err(&other, dir.path(), "v2") {
        CacheError::WrongVersion {
            found, expected, ..
        } => assert_eq!((found, expected), (2, 1)),
        e => panic!("{e}"),
    }
    // The other byte order.
    let mut swapped = good.clone();
    swapped[12..16].reverse();
    assert!(matches!(
        load_err(&swapped, dir.path(), "swapped"),
        CacheError::WrongByteOrder { .. }
    ));
    // A missing file.
    let e = Geometry::load_cache(&dir.path().join("absent")).unwrap_err();
    assert!(
        matches!(e, CacheError::Io { .. }) && e.to_string().contains("absent"),
        "{e}"
    );
}

/// Only a file that was recognisably a prism cache is one to remove to have it rebuilt: a
/// checkpoint (hours of work) or a mesh given as the cache is not prism's to remove.
#[test]
fn only_a_stale_or_damaged_cache_is_one_to_remove() {
    let good = scene().to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let mut flipped = good.clone();
    flipped[300] ^= 0x10;
    let mut other = good.clone();
    other[8..12].copy_from_slice(&2u32.to_ne_bytes());
    let mut swapped = good.clone();
    swapped[12..16].reverse();
    for (name, bytes) in [
        ("flipped", &flipped[..]),
        ("v2", &other),
        ("swapped", &swapped),
        ("short", &good[..good.len() / 3]),
        ("longer", &[&good[..], b"x"].concat()),
    ] {
        let e = load_err(bytes, dir.path(), name);
        assert!(e.is_prism_cache(), "{name}: {e}");
    }
    let checkpoint = prism_tracer::Checkpoint {
        passes: 1,
        settings: vec![],
        film: prism_tracer::Film::new(4, 4).unwrap(),
    };
    for (name, bytes) in [
        ("run.ckpt", checkpoint.to_bytes()),
        ("mesh.obj", b"v 0 0 0\n".to_vec()),
    ] {
        let e = load_err(&bytes, dir.path(), name);
        assert!(!e.is_prism_cache(), "{name}: {e}");
        assert!(e.to_string().contains("not a prism geometry cache"), "{e}");
    }
    let empty = load_err(&[], dir.path(), "empty");
    assert!(!empty.is_prism_cache(), "{empty}");
    let absent = Geometry::load_cache(&dir.path().join("absent")).unwrap_err();
    assert!(!absent.is_prism_cache(), "{absent}");
}

/// A FIFO used to hang the load (its open waits for a writer), and `/dev/null` to be taken
/// for a damaged cache.
#[cfg(unix)]
#[test]
fn only_regular_files_are_loaded_and_others_are_named() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let err = |p: &Path| Geometry::load_cache(p).unwrap_err();
    let fifo = dir.path().join("scene.cache");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    // A writer, so that an open of the FIFO would return rather than hang the test.
    let writer = std::thread::spawn({
        let fifo = fifo.clone();
        move || std::fs::write(fifo, b"not a cache")
    });
    let said = err(&fifo);
    // The writer's open waits for a reader; this one does not wait for a writer.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let _ = writer.join().unwrap();
    let name = fifo.display();
    assert_eq!(
        said.to_string(),
        format!("{name}: is a FIFO (named pipe), not a regular file")
    );
    assert!(!said.is_prism_cache());
    let said = err(Path::new("/dev/null"));
    assert_eq!(
        said.to_string(),
        "/dev/null: is a character device, not a regular file"
    );
    assert!(!said.is_prism_cache());
    let said = err(dir.path()).to_string();
    assert!(
        said.ends_with(": is a directory, not a regular file"),
        "{said}"
    );
}

struct Misaligned(Vec<u8>);

impl ByteSource for Misaligned {
    fn bytes(&self) -> &[u8] {
        &self.0[1..]
    }
}

#[test]
fn misaligned_bytes_are_refused() {
    let g = scene();
    let mut v = vec![0u8];
    v.extend_from_slice(g.as_bytes());
    // A Vec's buffer is at least 4-byte aligned, so one byte in it is not.
    let e = Geometry::from_bytes(Arc::new(Misaligned(v))).unwrap_err();
    assert!(matches!(e, CacheError::Misaligned { .. }), "{e}");
}

#[test]
fn an_empty_scene_round_trips() {
    let g = Geometry::build(vec![], vec![]).unwrap();
    let back = Geometry::from_bytes(Arc::new(g.to_bytes())).unwrap();
    assert_eq!(back.triangle_count(), 0);
    assert_eq!(
        back.intersect(&Ray::new(Vec3::ZERO, Vec3::new(0.0, 0.0, 1.0))),
        None
    );
}
