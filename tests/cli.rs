//! The `prism` command end to end, in one process: it renders, it is reproducible across
//! engines and thread counts, and bad input gives one clear message and a non-zero status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn prism(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(args)
        .output()
        .expect("run prism")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("prism-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn render(dir: &Path, name: &str, extra: &[&str]) -> Vec<u8> {
    let out = dir.join(format!("{name}.png"));
    let mut args = vec![
        "render", "--width", "24", "--height", "18", "--spp", "2", "--passes", "2", "--tile", "8",
        "--quiet", "--out",
    ];
    let out_s = out.to_str().unwrap().to_string();
    args.push(&out_s);
    args.extend_from_slice(extra);
    if !extra.contains(&"--seed") {
        args.extend(["--seed", "5"]);
    }
    let o = prism(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rendered 24x18"), "{}", text(&o));
    std::fs::read(&out).unwrap()
}

#[test]
fn info_describes_a_one_process_run() {
    let o = prism(&["info"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    for want in [
        "mpi://WORLD",
        "mpi://SELF",
        "prism://node",
        "prism://node-leaders",
        "ranks: 1",
        "nodes: 1",
        "huge pages for scenes of 2 MiB or more:\n  built or cached: ",
        "\n  node-shared:     ",
        "engine auto: threads",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
}

#[test]
fn images_are_byte_identical_across_engines_threads_and_schedules() {
    let dir = temp_dir("repro");
    let serial = render(&dir, "serial", &["--engine", "serial"]);
    assert_eq!(&serial[..8], b"\x89PNG\r\n\x1a\n");
    for (name, extra) in [
        ("t1", &["--engine", "threads", "--threads", "1"][..]),
        ("t3", &["--engine", "threads", "--threads", "3"][..]),
        (
            "static",
            &[
                "--engine",
                "threads",
                "--threads",
                "2",
                "--schedule",
                "static",
            ][..],
        ),
    ] {
        assert!(
            render(&dir, name, extra) == serial,
            "{name} differs from serial"
        );
    }
    // A different seed gives a different image: the comparison above can fail.
    let other = render(&dir, "seed", &["--engine", "serial", "--seed", "6"]);
    assert!(other != serial);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mesh_files_render_framed_by_a_default_camera() {
    let dir = temp_dir("mesh");
    let obj = dir.join("tetra.obj");
    std::fs::write(
        &obj,
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n",
    )
    .unwrap();
    let png = render(&dir, "mesh", &[obj.to_str().unwrap()]);
    assert!(png.len() > 100);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_fails_with_one_clear_message() {
    let dir = temp_dir("bad");
    let out = dir.join("x.png");
    let out = out.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["render".into(), "--width".into(), "0".into()],
            "--width must be at least 1",
        ),
        (
            vec!["render".into(), "--spp".into(), "0".into()],
            "--spp must be at least 1",
        ),
        (vec!["render".into(), "nothere.toml".into()], "nothere.toml"),
        (
            vec!["render".into(), "--fraction".into(), "1.5".into()],
            "fraction",
        ),
        // A negative number is the option's value (not short flags "-0", "-5"), refused in
        // prism's own words.
        (
            vec!["render".into(), "--cutoff".into(), "-0.5".into()],
            "cutoff is -0.5; it must be finite and at least 0",
        ),
        (
            vec!["render".into(), "--ratio".into(), "-2".into()],
            "ratio is -2; it must be at least 1",
        ),
        (
            vec!["render".into(), "--threads".into(), "4294967295".into()],
            "at most 4096",
        ),
        (
            vec![
                "render".into(),
                "--engine".into(),
                "serial".into(),
                "--threads".into(),
                "2".into(),
            ],
            "--threads 2 does not apply",
        ),
        (
            // The size passes the pixel limit; the film would need 120 GiB.
            vec![
                "render".into(),
                "--width".into(),
                "46340".into(),
                "--height".into(),
                "46340".into(),
            ],
            "GiB of memory",
        ),
        (
            vec!["render".into(), "--cache".into(), "x.cache".into()],
            "--cache keeps the built geometry",
        ),
        (
            vec![
                "bench".into(),
                "trace".into(),
                "--mesh".into(),
                "x.obj".into(),
                "--rays".into(),
                "18446744073709551615".into(),
            ],
            "give 1 to 10000000 rays",
        ),
    ];
    let bad_toml = dir.join("bad.toml");
    std::fs::write(
        &bad_toml,
        "[camera]\nposition = [0, 0, 5]\nlook_at = [0, 0, 0]\nvfov_degrees = 40\nbogus = 1\n",
    )
    .unwrap();
    let mut cases = cases;
    // Output names are checked before the render, so none of these renders a pixel.
    let missing_dir = dir.join("no-such-dir").join("x.png");
    let missing_dir = missing_dir.display().to_string();
    let jpg = dir.join("x.jpg").display().to_string();
    let exr_as_png = dir.join("x-exr.png").display().to_string();
    // A file where a directory belongs, and (Linux) a directory nobody may create files in,
    // root included: found before the render, not when the first pass is written.
    let under_a_file = dir.join("bad.toml").join("x.png").display().to_string();
    let mut outputs = vec![
        ("--out", missing_dir.as_str(), "no-such-dir does not exist"),
        (
            "--out",
            under_a_file.as_str(),
            "bad.toml is not a directory",
        ),
    ];
    if Path::new("/sys").is_dir() {
        outputs.push((
            "--exr",
            "/sys/x.exr",
            "--exr /sys/x.exr: cannot create files in /sys",
        ));
        outputs.push(("--checkpoint", "/sys/r.ckpt", "cannot create files in /sys"));
    }
    for (option, value, want) in outputs.into_iter().chain([
        ("--out", jpg.as_str(), "must end in .png"),
        ("--exr", exr_as_png.as_str(), "must end in .exr"),
        (
            "--error-image",
            out,
            "--error-image and --out name the same file",
        ),
    ]) {
        cases.push((vec!["render".into(), option.into(), value.into()], want));
    }
    cases.push((
        vec!["render".into(), bad_toml.display().to_string()],
        "bogus",
    ));
    // The scaling study checks its file before it runs (it takes minutes): a missing directory,
    // and a file that is not text (it would be replaced rather than edited).
    let not_text = dir.join("image.md");
    std::fs::write(&not_text, [0xff, 0xfe, 0x00, 0x89]).unwrap();
    for (file, want) in [
        (
            missing_dir.replace("x.png", "p.md"),
            "no-such-dir does not exist",
        ),
        (not_text.display().to_string(), "cannot read it as text"),
    ] {
        cases.push((
            vec!["bench".into(), "scaling".into(), "--out".into(), file],
            want,
        ));
    }
    if !cfg!(feature = "mpi") {
        cases.push((
            vec!["render".into(), "--engine".into(), "mpi".into()],
            "--features mpi",
        ));
    }
    for (args, want) in cases {
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        if a[0] == "render" {
            if !a.contains(&"--out") {
                a.extend(["--out", out]);
            }
            a.push("--quiet");
        }
        let o = prism(&a);
        assert!(!o.status.success(), "{a:?} succeeded");
        let t = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(t.contains(want), "{a:?}: wanted {want:?} in {t:?}");
        assert!(!t.contains("panicked"), "{a:?} panicked: {t}");
        assert_eq!(t.trim().lines().count(), 1, "{a:?}: not one line: {t}");
    }
    for file in [out, &jpg, &exr_as_png] {
        assert!(!Path::new(file).exists(), "a failed run wrote {file}");
    }
    assert_eq!(std::fs::read(&not_text).unwrap(), [0xff, 0xfe, 0x00, 0x89]);
    // In an interactive `srun --pty bash` shell (a Slurm step of one task) the study may run:
    // it gets as far as checking its file. Under mpirun, or a step of several, it refuses.
    let study = missing_dir.replace("x.png", "p.md");
    for (step, want) in [
        ("1", "no-such-dir does not exist"),
        // Refused as a job of 2 (how depends on the build: this launch has no MPI behind it).
        ("2", "2 processes (SLURM_STEP_NUM_TASKS is set)"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_prism"))
            .args(["bench", "scaling", "--out", &study])
            .env("SLURM_STEP_NUM_TASKS", step)
            .env("SLURM_PROCID", "0")
            .output()
            .expect("run prism");
        let t = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            !o.status.success() && t.contains(want),
            "step of {step}: {t}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_closed_or_full_standard_output_is_reported_not_a_panic() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    let Ok(full) = full else {
        eprintln!("no /dev/full here: skipped");
        return;
    };
    let o = Command::new(env!("CARGO_BIN_EXE_prism"))
        .arg("info")
        .stdout(full)
        .output()
        .expect("run prism");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write to standard output"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A reader that has gone: the quiet end of a command whose pipe closed. The read end is
    // closed before the command starts, so its first write meets no reader.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_prism"))
        .arg("info")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run prism");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn the_error_image_says_what_its_white_stands_for() {
    let dir = temp_dir("errimg");
    let (out, err) = (dir.join("x.png"), dir.join("e.png"));
    let o = prism(&[
        "render",
        "--width",
        "16",
        "--height",
        "16",
        "--spp",
        "4",
        "--passes",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--error-image",
        err.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert!(said.contains("in 1 pass:"), "{said}");
    let white = said
        .split("255 (white) for a normalised error of ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|w| w.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no white level in: {said}"));
    assert!(white > 0.0 && white < 10.0, "{said}");
    // The file carries the same value (in full) in its Comment text.
    let bytes = std::fs::read(&err).unwrap();
    let comment = String::from_utf8_lossy(&bytes);
    let in_file = comment
        .split(" x ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|w| w.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no white level in the PNG's text"));
    assert!(
        (in_file - white).abs() <= 1e-4 * white,
        "{in_file} vs {white}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn one_sample_per_pass_still_runs_the_adaptive_passes() {
    let dir = temp_dir("spp1");
    let out = dir.join("x.png");
    let o = prism(&[
        "render",
        "--width",
        "16",
        "--height",
        "16",
        "--spp",
        "1",
        "--passes",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("in 3 passes"), "{}", text(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_cache_of_an_edited_scene_is_rebuilt_not_used() {
    let dir = temp_dir("stale-cache");
    let scene = dir.join("scene.toml");
    let cache = dir.join("scene.cache");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/tracer/scenes/example.toml"),
    )
    .unwrap();
    // Mesh paths in the example are relative to its directory.
    let scenes = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/tracer/scenes");
    for entry in std::fs::read_dir(&scenes).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e != "toml") {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(&scene, &example).unwrap();
    let s = scene.to_str().unwrap();
    let c = cache.to_str().unwrap();
    let first = render(&dir, "first", &[s, "--cache", c]);
    assert!(cache.exists());
    assert_eq!(render(&dir, "again", &[s, "--cache", c]), first);

    // Move the glass ball: the cache no longer describes the scene.
    let edited = example.replace(
        "translate = [-1.6, 0.6, 0.3]",
        "translate = [-1.2, 0.6, 0.3]",
    );
    assert_ne!(
        edited, example,
        "the example scene changed: edit another instance"
    );
    std::fs::write(&scene, &edited).unwrap();
    let fresh_scene = dir.join("fresh.toml");
    std::fs::write(&fresh_scene, &edited).unwrap();
    let fresh = render(&dir, "fresh", &[fresh_scene.to_str().unwrap()]);
    assert_ne!(fresh, first, "the edit changed nothing in the image");
    assert_eq!(render(&dir, "cached", &[s, "--cache", c]), fresh);
    // ... and the cache now holds the edited scene.
    assert_eq!(render(&dir, "cached2", &[s, "--cache", c]), fresh);

    // A cache written by another format version (bytes 8..12) is rebuilt too, with a note.
    let mut bytes = std::fs::read(&cache).unwrap();
    let version = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
    bytes[8..12].copy_from_slice(&(version - 1).to_ne_bytes());
    std::fs::write(&cache, &bytes).unwrap();
    let out = dir.join("old.png");
    let mut args = vec!["render", s, "--cache", c, "--out", out.to_str().unwrap()];
    args.extend("--width 24 --height 18 --spp 2 --passes 2 --tile 8 --quiet --seed 5".split(' '));
    let o = prism(&args);
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("format version") && said.contains("rebuilding it"),
        "{said}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), fresh);
    let rebuilt = std::fs::read(&cache).unwrap();
    assert_eq!(rebuilt[8..12], version.to_ne_bytes());
    // So is one from a machine of the other byte order (its mark, bytes 12..16, reversed).
    let mut swapped = rebuilt.clone();
    swapped[12..16].reverse();
    std::fs::write(&cache, &swapped).unwrap();
    let o = prism(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("other byte order"), "{}", text(&o));
    assert_eq!(std::fs::read(&cache).unwrap(), rebuilt);
    // A damaged one (a flipped bit near its end) is an error named by its option, as every
    // other --cache error, with the advice to remove it; it is kept.
    let mut damaged = rebuilt.clone();
    let at = damaged.len() - 5;
    damaged[at] ^= 1;
    std::fs::write(&cache, &damaged).unwrap();
    let o = prism(&args);
    assert!(!o.status.success());
    let said = text(&o);
    assert!(
        said.contains(&format!("--cache {c}: "))
            && said.contains("remove it (or name another --cache)"),
        "{said}"
    );
    assert_eq!(std::fs::read(&cache).unwrap(), damaged);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A cache that must be rebuilt (its scene changed) but cannot be written costs a warning, not
/// the build: the render goes on, and the old cache is left as it was. Root may write in any
/// directory, so the write is made to fail by a name too long for its temporary file (the
/// cache's name plus `.tmp-<host>-<pid>` passes the file system's 255 bytes).
#[test]
fn a_cache_that_cannot_be_written_is_a_warning_and_the_render_goes_on() {
    let dir = temp_dir("unwritable-cache");
    let obj = dir.join("tetra.obj");
    let tetra = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n";
    std::fs::write(&obj, tetra).unwrap();
    let o = obj.to_str().unwrap();
    let short = dir.join("tetra.cache");
    render(&dir, "first", &[o, "--cache", short.to_str().unwrap()]);
    let long = dir.join(format!("{}.cache", "c".repeat(244)));
    std::fs::rename(&short, &long).unwrap();
    let old = std::fs::read(&long).unwrap();
    // Another scene: the cache must be rebuilt, and its write fails.
    std::fs::write(&obj, tetra.replace("v 0 0 1", "v 0 0 2")).unwrap();
    let fresh = render(&dir, "fresh", &[o]);
    let out = dir.join("cached.png");
    let run = |cache: &Path| {
        prism(&[
            "render",
            o,
            "--cache",
            cache.to_str().unwrap(),
            "--width",
            "24",
            "--height",
            "18",
            "--spp",
            "2",
            "--passes",
            "2",
            "--tile",
            "8",
            "--seed",
            "5",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let said = run(&long);
    let t = text(&said);
    assert!(said.status.success(), "{t}");
    assert!(t.contains("rebuilding it"), "{t}");
    assert!(
        t.contains("prism: warning: could not update the cache (")
            && t.contains("): rendering without it; the next run builds the scene again"),
        "{t}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), fresh);
    assert_eq!(std::fs::read(&long).unwrap(), old, "the old cache changed");
    // A new cache that cannot be written: the same, said as a write.
    std::fs::remove_file(&long).unwrap();
    let said = run(&long);
    assert!(said.status.success(), "{}", text(&said));
    assert!(
        text(&said).contains("could not write the cache ("),
        "{}",
        text(&said)
    );
    assert!(!long.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_statistics_say_how_large_the_geometry_is_and_how_much_of_it_is_in_huge_pages() {
    let dir = temp_dir("stats");
    let json = dir.join("run.json");
    let bunny = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/tracer/data/bunny.ply");
    // The shared helper's small render, of the bunny, with the statistics written out.
    render(
        &dir,
        "bunny",
        &[bunny, "--stats-json", json.to_str().unwrap()],
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // 75k triangles: past the 2 MiB from which a geometry gets a mapping of its own.
    let bytes = stats["geometry_bytes"].as_u64().unwrap();
    assert!(bytes > 2 << 20, "{stats}");
    let huge = &stats["geometry_huge_page_bytes"];
    if cfg!(target_os = "linux") {
        assert!(huge.as_u64().is_some_and(|h| h <= bytes), "{stats}");
    } else {
        assert!(huge.is_null(), "{stats}");
    }
    // Each rank's times are plain seconds, which scripts can read without knowing serde.
    let root = &stats["ranks"][0];
    let (wall, render) = (&root["wall_seconds"], &root["render_seconds"]);
    assert!(wall.as_f64().is_some_and(|w| w > 0.0), "{stats}");
    assert!(render.as_f64().is_some_and(|r| r > 0.0), "{stats}");
    assert!(root.get("wall").is_none(), "{stats}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_statistics_count_the_film_in_the_memory_read_at_the_end() {
    // 1024 × 512 pixels: a film of tens of MiB (about 75 bytes a pixel), which the memory read
    // before the render cannot include and the one after it must.
    let dir = temp_dir("film-memory");
    let json = dir.join("run.json");
    let out = dir.join("x.png");
    let o = prism(&[
        "render",
        "--width",
        "1024",
        "--height",
        "512",
        "--spp",
        "1",
        "--passes",
        "1",
        "--max-depth",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--stats-json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let before = stats["pss_bytes_total"].as_u64().unwrap();
    let after = stats["pss_bytes_total_end"].as_u64().unwrap();
    if cfg!(target_os = "linux") {
        assert!(
            after >= before + (20 << 20),
            "{before} then {after}: {stats}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// --stats-json replaces its file as the images are replaced, by writing a temporary file and
/// renaming it: a reader of the old file (a hard link stands for one) keeps its bytes, and a
/// full disk would leave the old file rather than an empty one.
#[test]
fn run_statistics_replace_their_file_whole() {
    let dir = temp_dir("stats-replace");
    let json = dir.join("run.json");
    std::fs::write(&json, b"{\"old\": true}").unwrap();
    let held = dir.join("held.json");
    std::fs::hard_link(&json, &held).unwrap();
    render(&dir, "x", &["--stats-json", json.to_str().unwrap()]);
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(stats["rays"].as_u64().is_some_and(|r| r > 0), "{stats}");
    assert_eq!(std::fs::read_to_string(&held).unwrap(), "{\"old\": true}");
    assert_no_temporaries(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A render stopped after some passes and resumed from its checkpoint — with more passes
/// asked for, by another engine — ends with the same files as one that ran all its passes.
#[test]
fn a_render_resumed_from_its_checkpoint_ends_with_the_same_bytes() {
    let dir = temp_dir("checkpoint");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "render", "--width", "40", "--height", "30", "--spp", "3", "--seed", "9",
        ];
        args.extend_from_slice(extra);
        prism(&args)
    };
    let (full, full_exr) = (path("full.png"), path("full.exr"));
    let o = run(&[
        "--passes", "4", "--tile", "8", "--quiet", "--out", &full, "--exr", &full_exr,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let (ckpt, part, part_exr) = (path("run.ckpt"), path("part.png"), path("part.exr"));
    let files = ["--out", &part, "--exr", &part_exr, "--checkpoint", &ckpt];
    let with_checkpoint = |extra: &[&str]| run(&[extra, &files[..]].concat());
    let o = with_checkpoint(&["--passes", "2", "--tile", "8", "--engine", "serial"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("resuming"), "{}", text(&o));
    assert_ne!(
        std::fs::read(&part_exr).unwrap(),
        std::fs::read(&full_exr).unwrap()
    );
    // The tile size is not the render's: it may change too.
    let o = with_checkpoint(&[
        "--passes",
        "4",
        "--engine",
        "threads",
        "--threads",
        "2",
        "--tile",
        "16",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("resuming from") && said.contains("2 pass(es) done, going on with pass 3"),
        "{said}"
    );
    assert!(
        said.contains("in 2 passes (resumed after pass 2, from"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&part_exr).unwrap(),
        std::fs::read(&full_exr).unwrap()
    );
    assert_eq!(std::fs::read(&part).unwrap(), std::fs::read(&full).unwrap());

    // A checkpoint that holds every pass asked for renders nothing, and writes its image again.
    std::fs::remove_file(&part).unwrap();
    let o = run(&["--passes", "4", "--out", &part, "--checkpoint", &ckpt]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("in 0 passes"), "{}", text(&o));
    assert!(
        text(&o).contains("as many as --passes asks"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&part).unwrap(), std::fs::read(&full).unwrap());

    // A render that converged (every pixel below the cutoff after its first pass) is said to
    // have, when run again, and renders nothing more.
    let done = path("done.ckpt");
    let converged = [
        "--passes",
        "5",
        "--cutoff",
        "1e9",
        "--out",
        &part,
        "--checkpoint",
        &done,
    ];
    let o = run(&converged);
    assert!(
        o.status.success()
            && text(&o).contains("in 1 pass:")
            && text(&o).contains("converged after pass 1 of 5"),
        "{}",
        text(&o)
    );
    let o = run(&converged);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("1 pass(es) done, and the image has converged: writing it")
            && text(&o).contains("in 0 passes")
            && !text(&o).contains("converged after"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A checkpoint of another render, or a damaged one, is refused with the reason and left as
/// it was: hours of passes must not be overwritten by a typo.
#[test]
fn a_checkpoint_of_another_render_or_a_damaged_one_is_refused_and_kept() {
    let dir = temp_dir("checkpoint-refused");
    let ckpt = dir.join("run.ckpt");
    let out = dir.join("x.png");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "render",
            "--width",
            "16",
            "--height",
            "12",
            "--passes",
            "1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
            "--checkpoint",
            ckpt.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        prism(&args)
    };
    assert!(run(&["--spp", "2"]).status.success());
    let kept = std::fs::read(&ckpt).unwrap();
    for (extra, want) in [
        (&["--spp", "3"][..], "--spp 2 there, 3 here"),
        (&["--spp", "2", "--seed", "1"][..], "--seed 0 there, 1 here"),
        (
            &["--spp", "2", "--max-depth", "3"][..],
            "--max-depth 8 there, 3 here",
        ),
        (
            &["--spp", "2", "--fraction", "0.5", "--ratio", "4"][..],
            "--fraction 0.2 there, 0.5 here; --ratio 10 there, 4 here",
        ),
    ] {
        let o = run(extra);
        assert!(!o.status.success(), "{extra:?} resumed another render");
        let said = text(&o);
        assert!(
            said.contains("belongs to another render") && said.contains(want),
            "{extra:?}: {said}"
        );
        assert_eq!(said.matches("error").count(), 1, "{said}");
        assert_eq!(std::fs::read(&ckpt).unwrap(), kept);
    }
    // Another scene: the same size and settings, a mesh instead of the Cornell box.
    let cube = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/tracer/tests/data/cube.obj"
    );
    let o = run(&[cube, "--spp", "2"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("differs in the scene"), "{}", text(&o));
    assert_eq!(std::fs::read(&ckpt).unwrap(), kept);

    // A damaged checkpoint: one flipped bit in its film.
    let mut damaged = kept.clone();
    let at = damaged.len() - 30;
    damaged[at] ^= 1;
    std::fs::write(&ckpt, &damaged).unwrap();
    let o = run(&["--spp", "2"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("checksum mismatch"), "{}", text(&o));
    assert_eq!(std::fs::read(&ckpt).unwrap(), damaged);
    // A checkpoint of more passes than asked for: its image is not the one asked for.
    let two = dir.join("two.ckpt");
    let small = [
        "render", "--width", "16", "--height", "12", "--quiet", "--out",
    ];
    let with = |passes: &str| {
        let mut args = small.to_vec();
        args.extend([out.to_str().unwrap(), "--checkpoint", two.to_str().unwrap()]);
        args.extend(["--passes", passes]);
        prism(&args)
    };
    assert!(with("2").status.success());
    let kept_two = std::fs::read(&two).unwrap();
    let o = with("1");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("holds 2 passes, more than --passes 1 asks for"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&two).unwrap(), kept_two);
    // A whole file whose header counts a pass more than its pixels hold: a resume would
    // skip that pass. Refused, naming the file, and kept.
    let mut miscounted = prism::tracer::Checkpoint::read(&two).unwrap();
    miscounted.passes = 3;
    miscounted.write(&two).unwrap();
    let miscounted_bytes = std::fs::read(&two).unwrap();
    let o = with("4");
    assert!(!o.status.success());
    let want = format!(
        "--checkpoint {}: corrupt: it says 3 passes are done, but its pixels have merged \
         passes 1 to 2",
        two.display()
    );
    assert!(text(&o).contains(&want), "{}", text(&o));
    assert_eq!(std::fs::read(&two).unwrap(), miscounted_bytes);
    std::fs::write(&two, &kept_two).unwrap();

    // Not a file to write over: the checkpoint named like another output, however spelt.
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let name = |p: PathBuf| p.to_str().unwrap().to_string();
    let (x, dot_x) = (name(out.clone()), name(dir.join(".").join("x.png")));
    let (two_s, json) = (
        name(two.clone()),
        name(dir.join("sub").join("..").join("two.ckpt")),
    );
    for (args, clash) in [
        (
            vec!["--out", &x, "--checkpoint", &x],
            "--checkpoint and --out",
        ),
        (
            vec!["--out", &dot_x, "--checkpoint", &x],
            "--checkpoint and --out",
        ),
    ] {
        let o = prism(&[&["render"][..], &args].concat());
        assert!(!o.status.success());
        let want = format!("{clash} name the same file");
        assert!(text(&o).contains(&want), "{}", text(&o));
    }
    // The statistics, written as JSON, only go to a .json file: never over a checkpoint.
    let o = prism(&[
        "render",
        "--out",
        &x,
        "--stats-json",
        &json,
        "--checkpoint",
        &two_s,
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("this file is written as JSON, so its name must end in .json"),
        "{}",
        text(&o)
    );
    // Nor over the scene file, however it is spelt.
    let scene = dir.join("scene.json");
    std::fs::write(&scene, b"not a scene, but named like statistics").unwrap();
    let spelt = name(dir.join("sub").join("..").join("scene.json"));
    let o = prism(&[
        "render",
        &name(scene.clone()),
        "--out",
        &x,
        "--stats-json",
        &spelt,
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--stats-json") && text(&o).contains("names the scene file"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(&scene).unwrap(),
        b"not a scene, but named like statistics"
    );
    // Nor over a mesh file the scene reads: a cache or checkpoint may take any name.
    let mesh = dir.join("tri.obj");
    std::fs::write(&mesh, "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n").unwrap();
    let toml = dir.join("tri.toml");
    std::fs::write(
        &toml,
        "[camera]\nposition = [0, 0, 3]\nlook_at = [0, 0, 0]\nvfov_degrees = 40\n\
         [[materials]]\nname = \"m\"\ntype = \"emissive\"\nradiance = [1, 1, 1]\n\
         [[meshes]]\nname = \"t\"\nfile = \"tri.obj\"\n\
         [[instances]]\nmesh = \"t\"\nmaterial = \"m\"\n",
    )
    .unwrap();
    for option in ["--cache", "--checkpoint"] {
        let o = prism(&[
            "render",
            &name(toml.clone()),
            "--out",
            &x,
            option,
            &name(dir.join(".").join("tri.obj")),
        ]);
        assert!(!o.status.success(), "{option}");
        assert!(
            text(&o).contains(&format!("{option} "))
                && text(&o).contains("names the mesh file")
                && !text(&o).contains("remove it"),
            "{}",
            text(&o)
        );
        assert_eq!(text(&o).trim().lines().count(), 1, "{}", text(&o));
    }
    assert_eq!(
        std::fs::read(&mesh).unwrap(),
        b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
    );
    assert_eq!(std::fs::read(&two).unwrap(), kept_two);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--time-limit` ends a render between passes, with a note that says how to go on, and the
/// next run goes on from the checkpoint to the image a run without a limit makes.
#[test]
fn a_time_limit_stops_between_passes_and_the_next_run_goes_on() {
    let dir = temp_dir("time-limit");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (full, part, ckpt) = (path("full.exr"), path("part.exr"), path("run.ckpt"));
    let base = [
        "render", "--width", "32", "--height", "24", "--spp", "2", "--passes", "5", "--quiet",
    ];
    let run = |extra: &[&str]| prism(&[&base[..], extra].concat());
    let o = run(&["--out", &path("full.png"), "--exr", &full]);
    assert!(o.status.success(), "{}", text(&o));

    // A millisecond is gone before the first pass ends, and the first pass always runs.
    let stats = path("stopped.json");
    let part_args = [
        "--out",
        &path("part.png"),
        "--exr",
        &part,
        "--checkpoint",
        &ckpt,
    ];
    let o = run(&[
        &part_args[..],
        &["--time-limit", "0.001s", "--stats-json", &stats],
    ]
    .concat());
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert!(said.contains("in 1 pass:"), "{said}");
    assert!(
        said.contains("stopped after pass 1 of 5: the next would have ended past --time-limit")
            && said.contains("run the same command again to go on from"),
        "{said}"
    );
    let json = std::fs::read_to_string(&stats).unwrap();
    assert!(json.contains("\"end\": \"Deadline\""), "{json}");

    let o = run(&[&part_args[..], &["--time-limit", "1h"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("in 4 passes (resumed after pass 1"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("stopped"), "{}", text(&o));
    assert_eq!(std::fs::read(&part).unwrap(), std::fs::read(&full).unwrap());

    let o = run(&["--out", &path("x.png"), "--time-limit", "5x"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("'5x' is not a duration such as 90s, 45m, 1h30m, 01:30:00"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts a render that would go on for minutes (its sampler never converges), with a
/// checkpoint, and returns it once the first checkpoint is on disk. Without `--quiet` it
/// prints a line after each pass's files are saved.
fn long_render(dir: &Path, ckpt: &str, quiet: bool) -> std::process::Child {
    let out = dir.join("long.png");
    let mut child = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args([
            "render", "--width", "48", "--height", "32", "--spp", "2", "--seed", "4", "--passes",
            "1000000", "--out",
        ])
        .arg(&out)
        .args(quiet.then_some("--quiet"))
        .args(["--checkpoint", ckpt])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start prism");
    let begun = std::time::Instant::now();
    while !Path::new(ckpt).exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the render ended early: {status}");
        }
        assert!(
            begun.elapsed().as_secs() < 120,
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

fn send(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// No file of `dir` is a temporary one that a write left behind.
fn assert_no_temporaries(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// SIGUSR1 (a batch system's warning before the time limit) stops a render after the pass in
/// progress, with status 0 and a checkpoint that a later run goes on from, to the same bytes.
#[test]
fn sigusr1_stops_a_render_between_passes_and_the_next_run_goes_on() {
    let dir = temp_dir("sigusr1");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ckpt = path("run.ckpt");
    let child = long_render(&dir, &ckpt, true);
    // A second run given the same checkpoint meanwhile (a job array whose jobs all say
    // run.ckpt) is refused before it reads or writes it, naming the run that holds it.
    let other = prism(&[
        "render",
        "--width",
        "48",
        "--height",
        "32",
        "--passes",
        "3",
        "--quiet",
        "--out",
        &path("other.png"),
        "--checkpoint",
        &ckpt,
    ]);
    assert!(!other.status.success(), "{}", text(&other));
    assert!(
        text(&other).contains(&format!(
            "--checkpoint {ckpt}: in use by another run (process {} on ",
            child.id()
        )) && text(&other)
            .contains("Wait for that run to end, or give this one another --checkpoint"),
        "{}",
        text(&other)
    );
    assert!(!Path::new(&path("other.png")).exists());
    send(&child, "USR1");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !Path::new(&format!("{ckpt}.lock")).exists(),
        "a run that ends removes its lock file"
    );
    let said = text(&o);
    let done: usize = said
        .split("stopped after pass ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stop note: {said}"));
    assert!(
        said.contains(&format!(
            "stopped after pass {done} of 1000000: SIGUSR1 asked for a stop; run the same \
             command again to go on from {ckpt}"
        )),
        "{said}"
    );
    let held = prism::tracer::Checkpoint::read(Path::new(&ckpt)).unwrap();
    assert_eq!(
        held.passes as usize, done,
        "the checkpoint is not of the last pass"
    );
    assert_no_temporaries(&dir);

    // Two passes more from the checkpoint, and the same two passes in one go.
    let passes = (done + 2).to_string();
    let common = [
        "render", "--width", "48", "--height", "32", "--spp", "2", "--seed", "4", "--quiet",
        "--passes", &passes,
    ];
    let (resumed, whole) = (path("resumed.exr"), path("whole.exr"));
    let o = prism(
        &[
            &common[..],
            &[
                "--out",
                &path("r.png"),
                "--exr",
                &resumed,
                "--checkpoint",
                &ckpt,
            ],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("in 2 passes (resumed after pass {done}")),
        "{}",
        text(&o)
    );
    let o = prism(&[&common[..], &["--out", &path("w.png"), "--exr", &whole]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(&resumed).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGINT and SIGTERM still end a render with a checkpoint at once, by the signal, but only
/// after the checkpoint being written is whole; the note says what it holds, which is every
/// pass that was said to be done.
#[test]
fn sigint_ends_a_render_with_its_last_checkpoint_whole_and_named() {
    use std::os::unix::process::ExitStatusExt;
    for signal in ["INT", "TERM"] {
        let dir = temp_dir(&format!("sig{signal}"));
        let ckpt = dir.join("run.ckpt").to_str().unwrap().to_string();
        let child = long_render(&dir, &ckpt, false);
        send(&child, signal);
        let o = child.wait_with_output().unwrap();
        let number = if signal == "INT" { 2 } else { 15 };
        assert_eq!(o.status.signal(), Some(number), "{}", text(&o));
        let said = text(&o);
        let held = prism::tracer::Checkpoint::read(Path::new(&ckpt)).unwrap();
        let name = if signal == "INT" {
            "SIGINT"
        } else {
            "SIGTERM (from the launcher, the batch system or a user)"
        };
        assert!(
            said.contains(&format!(
                "prism: {name}: ending the render; {ckpt} holds {} pass(es): run the same \
                 command again to go on from there",
                held.passes
            )),
            "{said}"
        );
        assert!(held.passes >= 1);
        let last_said = said
            .lines()
            .filter_map(|l| {
                l.strip_prefix("pass ")?
                    .split(':')
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        assert!(
            last_said <= held.passes,
            "pass {last_said} was said to be done, the checkpoint holds {}",
            held.passes
        );
        assert_no_temporaries(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Without --checkpoint, SIGTERM still ends a render by the signal, after the images of the
/// pass being saved are whole, and the note says what the image holds.
#[test]
fn sigterm_without_a_checkpoint_says_what_the_image_holds() {
    use std::os::unix::process::ExitStatusExt;
    let dir = temp_dir("sigterm-image");
    let out = dir.join("long.png");
    let mut child = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args([
            "render", "--width", "48", "--height", "32", "--spp", "2", "--passes", "1000000",
            "--quiet", "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start prism");
    let begun = std::time::Instant::now();
    while !out.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the render ended early: {status}");
        }
        assert!(begun.elapsed().as_secs() < 120, "no image after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    send(&child, "TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.signal(), Some(15), "{}", text(&o));
    let said = text(&o);
    let prefix = format!(
        "prism: SIGTERM (from the launcher, the batch system or a user): ending the render; {} \
         holds ",
        out.display()
    );
    let held: usize = said
        .split(&prefix)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no note: {said}"));
    assert!(held >= 1, "{said}");
    assert!(
        said.contains("(a render with --checkpoint could go on from there)"),
        "{said}"
    );
    // A whole PNG ends with its IEND chunk.
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.ends_with(b"IEND\xaeB`\x82"), "a cut image");
    assert_no_temporaries(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A render whose standard error nobody reads (a full pipe) still ends on SIGTERM: the note
/// it cannot print does not keep it alive.
#[test]
fn sigterm_ends_a_render_whose_standard_error_is_full() {
    use std::os::unix::process::ExitStatusExt;
    let dir = temp_dir("sigterm-full");
    let ckpt = dir.join("run.ckpt").to_str().unwrap().to_string();
    // Not --quiet: a line per pass, until the pipe, never read, is full and the render waits.
    let mut child = long_render(&dir, &ckpt, false);
    let held = || {
        prism::tracer::Checkpoint::read(Path::new(&ckpt))
            .map(|c| c.passes)
            .ok()
    };
    let begun = std::time::Instant::now();
    let mut last = (held(), std::time::Instant::now());
    while last.1.elapsed().as_millis() < 1500 {
        assert!(
            begun.elapsed().as_secs() < 120,
            "the render never blocked on its output"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = held();
        if now != last.0 {
            last = (now, std::time::Instant::now());
        }
    }
    send(&child, "TERM");
    let sent = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed().as_secs() > 20 {
            let _ = child.kill();
            panic!("still running 20 s after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.signal(), Some(15));
    assert_no_temporaries(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A temporary file that a killed run left beside an output is removed by the next run on
/// this host, once its process is gone; another host's is kept. The run says so even with
/// --quiet, which hides progress, not what happened to the user's files.
#[test]
fn temporaries_of_killed_runs_are_swept() {
    let dir = temp_dir("sweep");
    let ckpt = dir.join("run.ckpt");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let stale = dir.join(format!("run.ckpt.tmp-{host}-{pid}"));
    let foreign = dir.join(format!("run.ckpt.tmp-elsewhere-{pid}"));
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    std::fs::write(&foreign, b"being written on another node").unwrap();
    let out = dir.join("x.png");
    let o = prism(&[
        "render",
        "--width",
        "8",
        "--height",
        "8",
        "--passes",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--checkpoint",
        ckpt.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "prism: note: removed {}, left by a run killed while writing {}",
            stale.display(),
            ckpt.display()
        )),
        "{}",
        text(&o)
    );
    assert!(!stale.exists() && foreign.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// In a batch job's log (standard error not a terminal) a long pass reports its progress every
/// so often; not by default within a short run, and never with --quiet.
#[test]
fn a_batch_log_gets_progress_lines_during_a_pass() {
    let dir = temp_dir("progress");
    let out = dir.join("p.png");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "render", "--width", "160", "--height", "120", "--spp", "16", "--passes", "2",
            "--engine", "serial", "--out",
        ];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        let o = prism(&args);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let progress_lines = |said: &str| {
        said.lines()
            .filter(|l| l.starts_with("pass 1: ") && l.contains("% of its 19200 pixels after"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let said = run(&["--progress-every", "0.01s"]);
    let lines = progress_lines(&said);
    assert!(!lines.is_empty(), "{said}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" Mrays/s, about ") && l.ends_with(" left")),
        "{said}"
    );
    // The shares grow, and never reach 100 % (the pass's own line says it is done).
    let shares: Vec<u32> = lines
        .iter()
        .map(|l| {
            l["pass 1: ".len()..]
                .split('%')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        shares.windows(2).all(|w| w[0] <= w[1]) && shares.iter().all(|&s| s < 100),
        "{said}"
    );
    assert!(progress_lines(&run(&[])).is_empty());
    assert!(run(&["--progress-every", "0.01s", "--quiet"])
        .trim()
        .is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// --progress-every reads durations as --time-limit does, but its refusal of a bare number
/// speaks of a progress interval, not of how Slurm and PBS read a job's time.
#[test]
fn a_progress_interval_without_a_unit_is_refused_in_its_own_words() {
    let o = prism(&["render", "--progress-every", "10"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--progress-every") && err.contains("'10' needs a unit: 10s, 10m or 10h"),
        "{err}"
    );
    assert!(!err.contains("Slurm") && !err.contains("PBS"), "{err}");
    // --time-limit keeps its reason: there the batch systems' readings are the point.
    let o = prism(&["render", "--time-limit", "10"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("Slurm reads"), "{err}");
}

/// --help says which scenes --cache serves (the built-in box is refused), and how a cache may
/// be replaced under a render that maps it.
#[test]
fn the_help_says_what_a_cache_is_for() {
    let o = prism(&["render", "--help"]);
    assert!(o.status.success(), "{}", text(&o));
    let help = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("the built BVH of a scene file or mesh (not of the built-in cornell)"),
        "{help}"
    );
    assert!(
        help.contains(
            "Never change a cache in place while a render maps it (that render dies \
             with SIGBUS): write a new file and rename it over the old one"
        ),
        "{help}"
    );
}

/// More render threads than the process has CPUs is said once, as a warning, and still runs;
/// as many as its CPUs is not.
#[test]
fn more_threads_than_cpus_is_a_warning() {
    let dir = temp_dir("crowded");
    let out = dir.join("c.png");
    let cpus = std::thread::available_parallelism().unwrap().get();
    let run = |threads: usize, quiet: bool| {
        let threads = threads.to_string();
        let mut args = vec![
            "render",
            "--width",
            "16",
            "--height",
            "16",
            "--passes",
            "1",
            "--threads",
            &threads,
            "--out",
        ];
        args.push(out.to_str().unwrap());
        if quiet {
            args.push("--quiet");
        }
        let o = prism(&args);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let said = run(cpus + 1, false);
    let want = format!(
        "prism: warning: this process runs {} render threads on {cpus} CPU(s), so they share \
         cores: give --threads {cpus} or fewer",
        cpus + 1
    );
    assert_eq!(said.matches(&want).count(), 1, "{said}");
    assert!(!run(cpus, false).contains("warning"));
    assert!(!run(cpus + 1, true).contains("warning"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without --out, the image is named after the scene, in the current directory: the built-in
/// box's is cornell.png, a mesh's or scene file's takes its name.
#[test]
fn the_default_image_is_named_after_the_scene() {
    let dir = temp_dir("default-out");
    let cube = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/tracer/tests/data/cube.obj"
    );
    for (scene, png) in [(None, "cornell.png"), (Some(cube), "cube.png")] {
        let mut args = vec!["render", "--width", "8", "--height", "8", "--passes", "1"];
        args.extend(scene);
        let o = Command::new(env!("CARGO_BIN_EXE_prism"))
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains(&format!("-> {png}")), "{}", text(&o));
        assert!(dir.join(png).is_file(), "{png} was not written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `srun` with no MPI plugin (or a build without MPI under Slurm) starts N processes that each
/// see only Slurm's own variables. Each must refuse rather than render the whole image alone
/// into the same file; rank 0 alone says why, and a batch script's own variables (one process)
/// are not taken for a launch.
#[test]
fn an_srun_step_that_mpi_cannot_see_is_refused() {
    let dir = temp_dir("srun");
    let out = dir.join("x.png");
    let run = |vars: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_prism"))
            .args(["render", "--width", "8", "--height", "8", "--spp", "1"])
            .args(["--passes", "1", "--quiet", "--out", out.to_str().unwrap()])
            .envs(vars.iter().copied())
            .output()
            .expect("run prism")
    };
    let want = if cfg!(feature = "mpi") {
        "MPI sees a world of 1 process"
    } else {
        "--features mpi"
    };
    for rank in ["0", "1"] {
        let o = run(&[("SLURM_STEP_NUM_TASKS", "4"), ("SLURM_PROCID", rank)]);
        assert!(!o.status.success(), "rank {rank}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        if rank == "0" {
            assert!(err.contains(want), "{err}");
            assert!(err.contains("4 processes"), "{err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        } else {
            assert!(err.trim().is_empty(), "rank 1 spoke: {err}");
        }
        assert!(!out.exists(), "rank {rank} rendered alone");
    }
    let batch = run(&[("SLURM_NTASKS", "4"), ("SLURM_PROCID", "0")]);
    assert!(batch.status.success(), "{}", text(&batch));
    assert!(out.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A checkpoint named through a link (to scratch space, say) that points at no file yet is a
/// fresh start, and every save goes through the link to its target: the link stays a link.
#[test]
fn a_checkpoint_link_to_a_missing_file_is_written_through() {
    let dir = temp_dir("ckpt-link");
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let link = dir.join("run.ckpt");
    std::os::unix::fs::symlink(scratch.join("run.ckpt"), &link).unwrap();
    let ckpt = link.to_str().unwrap().to_string();
    let first = render(&dir, "linked", &["--checkpoint", &ckpt, "--passes", "1"]);
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    let saved = std::fs::metadata(scratch.join("run.ckpt")).unwrap();
    assert!(saved.len() > 0);
    // Resumed through the same link: the image of two passes, as one run would make it.
    let resumed = render(&dir, "linked", &["--checkpoint", &ckpt]);
    let whole = render(&dir, "whole", &[]);
    assert_eq!(resumed, whole);
    assert_ne!(first, whole);
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    std::fs::remove_dir_all(dir).unwrap();
}
