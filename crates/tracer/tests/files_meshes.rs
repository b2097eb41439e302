//! Mesh readers: the same cube in every format gives the same mesh; malformed input gives an
//! error naming the file and the place; damaged files never panic and never yield a mesh with
//! bad indices.

use prism_tracer::io::{
    load_mesh, load_mesh_with_report, parse_mesh, LoadError, LoadErrorKind, MeshFormat,
};
use prism_tracer::Mesh;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const CUBES: [&str; 6] = [
    "cube.obj",
    "cube_ascii.ply",
    "cube_le.ply",
    "cube_be.ply",
    "cube_ascii.stl",
    "cube_binary.stl",
];

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Triangles as corner positions, each rotated to start at its smallest corner (keeping the
/// winding), sorted: equal for equal meshes whatever the vertex order.
fn canonical(mesh: &Mesh) -> Vec<[[u32; 3]; 3]> {
    let mut tris: Vec<[[u32; 3]; 3]> = (0..mesh.triangle_count())
        .map(|i| {
            let t = mesh.triangle(i).map(|p| p.to_array().map(f32::to_bits));
            let k = (0..3).min_by_key(|&k| t[k]).unwrap();
            [t[k], t[(k + 1) % 3], t[(k + 2) % 3]]
        })
        .collect();
    tris.sort();
    tris
}

/// Every edge used exactly once in each direction.
fn closed(mesh: &Mesh) -> bool {
    let mut edges = HashMap::new();
    for t in &mesh.indices {
        for k in 0..3 {
            *edges.entry((t[k], t[(k + 1) % 3])).or_insert(0) += 1;
        }
    }
    edges
        .iter()
        .all(|(&(a, b), &n)| n == 1 && edges.get(&(b, a)) == Some(&1))
}

fn valid(mesh: &Mesh) -> bool {
    mesh.triangle_count() > 0
        && mesh.positions.iter().all(|p| p.is_finite())
        && mesh
            .indices
            .iter()
            .flatten()
            .all(|&i| (i as usize) < mesh.positions.len())
}

#[test]
fn the_cube_is_the_same_mesh_in_every_format() {
    let reference = load_mesh(&data("cube.obj")).unwrap();
    assert_eq!(reference.triangle_count(), 12);
    assert_eq!(reference.positions.len(), 8);
    assert!(closed(&reference));
    for name in CUBES {
        let (mesh, warnings) = load_mesh_with_report(&data(name)).unwrap();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        assert_eq!(
            mesh.positions.len(),
            8,
            "{name}: shared corners are one vertex"
        );
        assert!(closed(&mesh), "{name}");
        assert_eq!(canonical(&mesh), canonical(&reference), "{name}");
        // Outward winding survives: every normal points away from the centre.
        for i in 0..mesh.triangle_count() {
            let [a, b, c] = mesh.triangle(i);
            let centre = prism_tracer::Vec3::splat(0.5);
            assert!(
                (b - a).cross(c - a).dot(a - centre) > 0.0,
                "{name} triangle {i}"
            );
        }
    }
}

#[test]
fn windows_line_endings_read_the_same() {
    let reference = canonical(&load_mesh(&data("cube.obj")).unwrap());
    for name in ["cube.obj", "cube_ascii.ply", "cube_ascii.stl"] {
        let text = std::fs::read_to_string(data(name)).unwrap();
        let crlf = text.replace('\n', "\r\n");
        let format = MeshFormat::from_path(Path::new(name)).unwrap();
        let (mesh, _) = parse_mesh(Path::new(name), format, crlf.as_bytes()).unwrap();
        assert_eq!(canonical(&mesh), reference, "{name}");
    }
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    /// Writes the file and expects an error that starts with its path and has the location.
    fn fails(&self, name: &str, bytes: impl AsRef<[u8]>, kind: LoadErrorKind) -> LoadError {
        let path = self.write(name, bytes);
        let err = load_mesh(&path).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind, kind, "{text}");
        assert!(text.starts_with(&format!("{}: ", path.display())), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
        err
    }
}

const TRI_OBJ: &str = "v 0 0 0\nv 1 0 0\nv 0 1 0\n";

#[test]
fn obj_errors_name_the_line() {
    let d = Dir::new();
    let e = d.fails(
        "a.obj",
        format!("{TRI_OBJ}f 1 2 3\nf 1 2 4\n"),
        LoadErrorKind::IndexOutOfRange,
    );
    assert_eq!(e.location.line, Some(5));
    assert!(e.to_string().contains("a.obj: line 5: "), "{e}");
    let e = d.fails(
        "b.obj",
        "v 0 0 0\nv 1 0 inf\nv 0 1 0\nf 1 2 3\n",
        LoadErrorKind::NonFinite,
    );
    assert_eq!(
        e.location.line,
        Some(4),
        "the face that uses the vertex: {e}"
    );
    let e = d.fails(
        "c.obj",
        format!("{TRI_OBJ}f 1 2 3\nv 1 2\n"),
        LoadErrorKind::Syntax,
    );
    assert_eq!(e.location.line, Some(5));
    let e = d.fails(
        "d.obj",
        format!("{TRI_OBJ}f 1 2 three\n"),
        LoadErrorKind::Syntax,
    );
    assert_eq!(e.location.line, Some(4));
    let e = d.fails(
        "e.obj",
        format!("{TRI_OBJ}f -4 -2 -1\n"),
        LoadErrorKind::IndexOutOfRange,
    );
    assert_eq!(e.location.line, Some(4));
    d.fails("f.obj", "", LoadErrorKind::Empty);
    d.fails(
        "g.obj",
        "# only a comment\nv 1 2 3\n",
        LoadErrorKind::NoTriangles,
    );
    d.fails("h.obj", b"v 0 0 0\n\xff\xfe\n", LoadErrorKind::Syntax);
}

fn ply_header(format: &str, vertex: &str, face: &str) -> String {
    format!(
        "ply\nformat {format} 1.0\nelement vertex 3\n{vertex}element face 1\n{face}end_header\n"
    )
}

const XYZ: &str = "property float x\nproperty float y\nproperty float z\n";
const FACE: &str = "property list uchar int vertex_indices\n";

fn binary_triangle(le: bool, corners: [[f32; 3]; 3], face: [i32; 3]) -> Vec<u8> {
    let mut b = ply_header(
        if le {
            "binary_little_endian"
        } else {
            "binary_big_endian"
        },
        XYZ,
        FACE,
    )
    .into_bytes();
    for c in corners.iter().flatten() {
        b.extend(if le { c.to_le_bytes() } else { c.to_be_bytes() });
    }
    b.push(3);
    for i in face {
        b.extend(if le { i.to_le_bytes() } else { i.to_be_bytes() });
    }
    b
}

const CORNERS: [[f32; 3]; 3] = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];

#[test]
fn ply_errors_name_the_element_and_line_or_byte_offset() {
    let d = Dir::new();
    let head_len = ply_header("binary_little_endian", XYZ, FACE).len() as u64;
    for le in [true, false] {
        let ok = binary_triangle(le, CORNERS, [0, 1, 2]);
        let (m, _) = load_mesh_with_report(&d.write("ok.ply", &ok)).unwrap();
        assert_eq!(m.triangle_count(), 1);

        let e = d.fails(
            "range.ply",
            binary_triangle(le, CORNERS, [0, 1, 3]),
            LoadErrorKind::IndexOutOfRange,
        );
        assert_eq!(e.location.element, Some(("face".into(), 0)));
        let shift = if le { 0 } else { 3 }; // "big" is three letters shorter than "little"
        assert_eq!(e.location.byte_offset, Some(head_len - shift + 36), "{e}");
        d.fails(
            "negative.ply",
            binary_triangle(le, CORNERS, [0, -1, 2]),
            LoadErrorKind::IndexOutOfRange,
        );

        let mut nan = CORNERS;
        nan[1][2] = f32::NAN;
        let e = d.fails(
            "nan.ply",
            binary_triangle(le, nan, [0, 1, 2]),
            LoadErrorKind::NonFinite,
        );
        assert_eq!(e.location.element, Some(("vertex".into(), 1)));
        assert_eq!(e.location.byte_offset, Some(head_len - shift + 12), "{e}");

        let e = d.fails("short.ply", &ok[..ok.len() - 3], LoadErrorKind::Truncated);
        assert_eq!(e.location.element, Some(("face".into(), 0)), "{e}");
        assert_eq!(e.location.byte_offset, Some(head_len - shift + 36), "{e}");
    }

    let ascii = |body: &str| format!("{}{body}", ply_header("ascii", XYZ, FACE));
    let e = d.fails(
        "a.ply",
        ascii("0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n"),
        LoadErrorKind::IndexOutOfRange,
    );
    assert_eq!(e.location.line, Some(13));
    assert!(e.to_string().contains("a.ply: line 13, face 0: "), "{e}");
    let e = d.fails(
        "b.ply",
        ascii("0 0 0\n1 0 0\n0 1\n3 0 1 2\n"),
        LoadErrorKind::Syntax,
    );
    assert_eq!(e.location.line, Some(12));
    let e = d.fails(
        "c.ply",
        ascii("0 0 0\n1 0 0\n0 1 0\n"),
        LoadErrorKind::Truncated,
    );
    assert_eq!(e.location.element, Some(("face".into(), 0)));

    // Headers: wrong magic, missing elements and properties, wrong property types.
    let e = d.fails(
        "h1.ply",
        "plyx\nformat ascii 1.0\nend_header\n",
        LoadErrorKind::Header,
    );
    assert_eq!(e.location.line, Some(1), "{e}");
    d.fails(
        "h2.ply",
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n",
        LoadErrorKind::MissingElement,
    );
    d.fails(
        "h3.ply",
        ply_header("ascii", "property float x\nproperty float y\n", FACE),
        LoadErrorKind::MissingElement,
    );
    d.fails(
        "h4.ply",
        ply_header("ascii", XYZ, "property list uchar float vertex_indices\n"),
        LoadErrorKind::WrongType,
    );
    d.fails(
        "h5.ply",
        ply_header("ascii", XYZ, "property int vertex_indices\n"),
        LoadErrorKind::WrongType,
    );
    d.fails(
        "h6.ply",
        ply_header(
            "ascii",
            "property list uchar float x\nproperty float y\nproperty float z\n",
            FACE,
        ),
        LoadErrorKind::WrongType,
    );
    d.fails(
        "h7.ply",
        "ply\nformat ascii 1.0\nelement vertex 3\n",
        LoadErrorKind::Header,
    );
    d.fails("empty.ply", "", LoadErrorKind::Empty);
}

#[test]
fn ply_reads_other_types_and_skips_other_elements() {
    let d = Dir::new();
    let text = "ply\nformat ascii 1.0\ncomment extra data\nelement vertex 4\n\
                property double x\nproperty double y\nproperty double z\nproperty uchar red\n\
                element edge 1\nproperty int vertex1\nproperty int vertex2\n\
                element face 1\nproperty list uchar uint vertex_index\nend_header\n\
                0 0 0 255\n1 0 0 0\n1 1 0 0\n0 1 0 0\n0 1\n4 0 1 2 3\n";
    let (m, w) = load_mesh_with_report(&d.write("x.ply", text)).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(m.indices, vec![[0, 1, 2], [0, 2, 3]]);
}

fn stl_facet(c: [[f32; 3]; 3]) -> String {
    let mut s = String::from("facet normal 0 0 1\nouter loop\n");
    for p in c {
        s += &format!("vertex {} {} {}\n", p[0], p[1], p[2]);
    }
    s + "endloop\nendfacet\n"
}

fn binary_stl(tris: &[[[f32; 3]; 3]], declared: u32) -> Vec<u8> {
    let mut b = vec![b' '; 80];
    b.extend(declared.to_le_bytes());
    for t in tris {
        b.extend([0u8; 12]);
        for c in t.iter().flatten() {
            b.extend(c.to_le_bytes());
        }
        b.extend([0u8; 2]);
    }
    b
}

#[test]
fn stl_errors_name_the_facet_and_line_or_byte_offset() {
    let d = Dir::new();
    let good = stl_facet(CORNERS);
    let mut nan = CORNERS;
    nan[2][0] = f32::NAN;
    let e = d.fails(
        "a.stl",
        format!("solid t\n{good}{}endsolid t\n", stl_facet(nan)),
        LoadErrorKind::NonFinite,
    );
    assert_eq!(e.location.element, Some(("facet".into(), 1)));
    assert_eq!(e.location.line, Some(13), "the line of the bad vertex: {e}");
    let e = d.fails(
        "b.stl",
        format!("solid t\n{good}"),
        LoadErrorKind::Truncated,
    );
    assert_eq!(e.location.element, Some(("facet".into(), 1)), "{e}");
    d.fails(
        "c.stl",
        format!(
            "solid t\n{}endsolid t\n",
            good.replace("outer loop", "outer")
        ),
        LoadErrorKind::Syntax,
    );

    let e = d.fails(
        "d.stl",
        binary_stl(&[CORNERS, nan], 2),
        LoadErrorKind::NonFinite,
    );
    assert_eq!(e.location.byte_offset, Some(84 + 50));
    let e = d.fails("e.stl", binary_stl(&[CORNERS], 2), LoadErrorKind::Truncated);
    assert_eq!(e.location.byte_offset, Some(84 + 50), "{e}");
    d.fails("f.stl", vec![0u8; 40], LoadErrorKind::Truncated);
    d.fails("g.stl", "", LoadErrorKind::Empty);
    d.fails("h.stl", binary_stl(&[], 0), LoadErrorKind::NoTriangles);
    // Extra bytes after the announced facets are a warning, not an error.
    let mut extra = binary_stl(&[CORNERS], 1);
    extra.extend(b"trailer");
    let (m, w) = load_mesh_with_report(&d.write("i.stl", extra)).unwrap();
    assert_eq!(m.triangle_count(), 1);
    assert!(w[0].contains("7 bytes"), "{w:?}");
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn with_bom(bytes: impl AsRef<[u8]>) -> Vec<u8> {
    [BOM, bytes.as_ref()].concat()
}

#[test]
fn a_byte_order_mark_is_skipped_and_lines_stay_right() {
    let reference = canonical(&load_mesh(&data("cube.obj")).unwrap());
    for name in [
        "cube.obj",
        "cube_ascii.ply",
        "cube_ascii.stl",
        "cube_le.ply",
    ] {
        let bytes = with_bom(std::fs::read(data(name)).unwrap());
        let format = MeshFormat::from_path(Path::new(name)).unwrap();
        let (mesh, warnings) = parse_mesh(Path::new(name), format, &bytes).unwrap();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        assert_eq!(canonical(&mesh), reference, "{name}");
    }

    let d = Dir::new();
    let e = d.fails(
        "a.obj",
        with_bom(format!("{TRI_OBJ}f 1 2 4\n")),
        LoadErrorKind::IndexOutOfRange,
    );
    assert_eq!(e.location.line, Some(4), "{e}");
    let ascii = with_bom(format!(
        "{}0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n",
        ply_header("ascii", XYZ, FACE)
    ));
    let e = d.fails("a.ply", ascii, LoadErrorKind::IndexOutOfRange);
    assert_eq!(e.location.line, Some(13), "{e}");
    // Binary offsets count the mark: they are offsets into the file as it is.
    let head_len = ply_header("binary_little_endian", XYZ, FACE).len() as u64;
    let e = d.fails(
        "b.ply",
        with_bom(binary_triangle(true, CORNERS, [0, 1, 3])),
        LoadErrorKind::IndexOutOfRange,
    );
    assert_eq!(e.location.byte_offset, Some(3 + head_len + 36), "{e}");
    let bad = stl_facet(CORNERS).replace("vertex 1 0 0", "vertex 1 z 0");
    let e = d.fails(
        "a.stl",
        with_bom(format!("solid t\n{bad}endsolid t\n")),
        LoadErrorKind::Syntax,
    );
    assert_eq!(e.location.line, Some(5), "{e}");
    d.fails("only.obj", BOM, LoadErrorKind::Empty);
}

#[test]
fn ascii_stl_reads_every_solid_and_refuses_text_after_the_last() {
    let d = Dir::new();
    let second = [[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]];
    let two = format!(
        "solid a\n{}endsolid a\n\nsolid b\n{}{}endsolid b\n\n",
        stl_facet(CORNERS),
        stl_facet(second),
        stl_facet([CORNERS[1], [1.0, 1.0, 0.0], CORNERS[2]])
    );
    let (m, w) = load_mesh_with_report(&d.write("two.stl", &two)).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(m.triangle_count(), 3);
    assert_eq!(m.positions.len(), 7, "corners shared across solids weld");

    // Lines: solid 1, facet 2-8, endsolid 9, blank 10, the stray text 11.
    let e = d.fails(
        "trailing.stl",
        format!("solid a\n{}endsolid a\n\nnot stl\n", stl_facet(CORNERS)),
        LoadErrorKind::Syntax,
    );
    assert_eq!(e.location.line, Some(11), "{e}");
    assert!(e.to_string().contains("not stl"), "{e}");
    // A second solid that never ends is cut short, in whichever facet it was.
    let e = d.fails(
        "cut.stl",
        format!(
            "solid a\n{}endsolid a\nsolid b\n{}",
            stl_facet(CORNERS),
            stl_facet(second)
        ),
        LoadErrorKind::Truncated,
    );
    assert_eq!(e.location.element, Some(("facet".into(), 2)), "{e}");
}

#[test]
fn ascii_stl_errors_name_the_line_of_the_bad_value() {
    let d = Dir::new();
    let good = stl_facet(CORNERS);
    // Lines of the second facet: facet 9, outer loop 10, vertices 11-13, endloop 14,
    // endfacet 15. (ASCII STL is read word by word, so a word after `endfacet` is where the
    // third facet's `facet normal` belongs.)
    for (from, to, kind, line) in [
        ("vertex 0 0 0", "vertex 0 x 0", LoadErrorKind::Syntax, 11),
        ("vertex 1 0 0", "vertex 1 0", LoadErrorKind::Syntax, 12),
        (
            "vertex 0 1 0",
            "vertex 0 1 1e39",
            LoadErrorKind::NonFinite,
            13,
        ),
        (
            "facet normal 0 0 1",
            "facet normal 0 zero 1",
            LoadErrorKind::Syntax,
            9,
        ),
        ("endloop", "endlop", LoadErrorKind::Syntax, 14),
        ("endfacet", "endfacet x", LoadErrorKind::Syntax, 15),
    ] {
        let bad = good.replace(from, to);
        let e = d.fails("bad.stl", format!("solid t\n{good}{bad}endsolid t\n"), kind);
        assert_eq!(e.location.line, Some(line), "{to}: {e}");
        let facet = if to == "endfacet x" { 2 } else { 1 };
        assert_eq!(
            e.location.element,
            Some(("facet".into(), facet)),
            "{to}: {e}"
        );
    }
    // The first facet's vertex line 4, as written by hand.
    let e = d.fails(
        "hand.stl",
        "solid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0 zero\nvertex 1 0 0\n\
         vertex 0 1 0\nendloop\nendfacet\nendsolid t\n",
        LoadErrorKind::Syntax,
    );
    assert_eq!(e.location.line, Some(4), "{e}");
    assert!(e.to_string().contains("hand.stl: line 4, facet 0: "), "{e}");
}

#[test]
fn ply_lines_with_values_beyond_the_header_are_errors() {
    let d = Dir::new();
    let ascii = |body: &str| format!("{}{body}", ply_header("ascii", XYZ, FACE));
    // Vertices on lines 10-12, the face on line 13.
    let e = d.fails(
        "face.ply",
        ascii("0 0 0\n1 0 0\n0 1 0\n3 0 1 2 2\n"),
        LoadErrorKind::Syntax,
    );
    assert_eq!(e.location.line, Some(13), "{e}");
    assert_eq!(e.location.element, Some(("face".into(), 0)), "{e}");
    let e = d.fails(
        "vertex.ply",
        ascii("0 0 0\n1 0 0 7\n0 1 0\n3 0 1 2\n"),
        LoadErrorKind::Syntax,
    );
    assert_eq!(e.location.line, Some(11), "{e}");
    assert_eq!(e.location.element, Some(("vertex".into(), 1)), "{e}");
    // Exactly what the header declares still reads, trailing blanks included.
    let (m, _) =
        load_mesh_with_report(&d.write("ok.ply", ascii("0 0 0 \n1 0 0\n0 1 0\n3 0 1 2  \n")))
            .unwrap();
    assert_eq!(m.triangle_count(), 1);
}

#[test]
fn ply_declarations_repeated_in_the_header_are_errors() {
    let d = Dir::new();
    // `element vertex` on lines 3 and 7.
    let twice = format!(
        "ply\nformat ascii 1.0\nelement vertex 3\n{XYZ}element vertex 3\n{XYZ}element face 1\n\
         {FACE}end_header\n0 0 0\n1 0 0\n0 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
    );
    let e = d.fails("element.ply", twice, LoadErrorKind::Header);
    assert_eq!(e.location.line, Some(7), "{e}");
    assert!(
        e.message.contains("`vertex`") && e.message.contains("line 3"),
        "{e}"
    );
    let e = d.fails(
        "property.ply",
        ply_header("ascii", &format!("{XYZ}property float y\n"), FACE),
        LoadErrorKind::Header,
    );
    assert_eq!(e.location.line, Some(7), "{e}");
}

#[test]
fn obj_texture_and_normal_indices_are_checked_like_vertex_indices() {
    let d = Dir::new();
    for (name, extra, line) in [
        ("no_vn.obj", "f 1//1 2//1 3//1\n", 4),
        ("no_vt.obj", "f 1/1 2/1 3/1\n", 4),
        ("zero_vn.obj", "vn 0 0 1\nf 1//1 2//0 3//1\n", 5),
        ("zero_vt.obj", "vt 0 0\nf 1/1/ 2/0/ 3/1/\n", 5),
        ("past_vt.obj", "vt 0 0\nf 1/1 2/2 3/1\n", 5),
        ("past_vn.obj", "vt 0 0\nvn 0 0 1\nf 1/1/1 2/1/1 3/1/2\n", 6),
        ("relative.obj", "vt 0 0\nvt 1 0\nf 1/-1 2/-2 3/-3\n", 6),
        // Only the `vt` lines read so far count.
        ("later.obj", "f 1/1 2/1 3/1\nvt 0 0\n", 4),
    ] {
        let e = d.fails(
            name,
            format!("{TRI_OBJ}{extra}"),
            LoadErrorKind::IndexOutOfRange,
        );
        assert_eq!(e.location.line, Some(line), "{name}: {e}");
    }
    // The first problem in the file is the one named, whichever check finds it.
    let e = d.fails(
        "first.obj",
        format!("{TRI_OBJ}f 1 2 x\nf 1//1 2//1 3//1\n"),
        LoadErrorKind::Syntax,
    );
    assert_eq!(e.location.line, Some(4), "{e}");

    let good = format!(
        "{TRI_OBJ}vt 0 0\nvt 1 0\nvt 0 1\nvn 0 0 1\n\
         f 1/1/1 2/2/1 3/3/1\nf 1//1 2//-1 3//1\nf 1/-3 2/-2 3/-1\n"
    );
    let (m, _) = load_mesh_with_report(&d.write("good.obj", good)).unwrap();
    assert_eq!(m.triangle_count(), 3);
}

#[test]
fn degenerate_triangles_are_dropped_with_a_count() {
    let d = Dir::new();
    let obj = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 2 0 0\nf 1 2 3\nf 1 2 4\nf 3 3 1\nf 1 2\n";
    let path = d.write("deg.obj", obj);
    let (m, w) = load_mesh_with_report(&path).unwrap();
    assert_eq!(m.triangle_count(), 1);
    // Two zero-area triangles; the two-vertex face is no triangle at all, said apart (as
    // the PLY reader says it).
    assert_eq!(m.dropped_degenerate(), 2);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter()
            .any(|w| w.starts_with(&format!("{}: dropped 2 degenerate", path.display()))),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.contains("ignored 1 face with fewer than 3 vertices")),
        "{w:?}"
    );

    let stl = binary_stl(&[CORNERS, [CORNERS[0], CORNERS[1], CORNERS[1]]], 2);
    let (m, w) = load_mesh_with_report(&d.write("deg.stl", stl)).unwrap();
    assert_eq!((m.triangle_count(), m.dropped_degenerate()), (1, 1));
    assert!(w[0].contains("dropped 1 degenerate"), "{w:?}");

    let e = d.fails(
        "all.stl",
        binary_stl(&[[CORNERS[0]; 3]], 1),
        LoadErrorKind::NoTriangles,
    );
    assert!(e.message.contains("degenerate"), "{e}");
}

#[test]
fn missing_files_and_unknown_extensions_are_errors() {
    let e = load_mesh(Path::new("/nonexistent/dir/x.ply")).unwrap_err();
    assert_eq!(e.kind, LoadErrorKind::Io);
    assert!(e.to_string().starts_with("/nonexistent/dir/x.ply: "), "{e}");
    let e = load_mesh(Path::new("model.3ds")).unwrap_err();
    assert_eq!(e.kind, LoadErrorKind::UnknownFormat);
}

/// A tiny deterministic generator for the damage tests (no dependency, same bytes every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn check_damaged(name: &str, bytes: &[u8]) -> Result<Mesh, LoadError> {
    let path = Path::new(name);
    let format = MeshFormat::from_path(path).unwrap();
    let result = parse_mesh(path, format, bytes).map(|(m, _)| m);
    match &result {
        Ok(m) => assert!(valid(m), "{name}: an invalid mesh came through"),
        Err(e) => {
            assert_ne!(e.kind, LoadErrorKind::ParserPanic, "{e}");
            assert!(e.to_string().starts_with(&format!("{name}: ")), "{e}");
        }
    }
    result
}

#[test]
fn truncated_files_are_errors_never_panics() {
    for name in CUBES {
        let bytes = std::fs::read(data(name)).unwrap();
        // Text formats may lose trailing blanks (and an STL its final name) and still be whole.
        let whole_from = match name {
            "cube_ascii.stl" => String::from_utf8_lossy(&bytes).find("endsolid").unwrap() + 8,
            _ => {
                bytes.len()
                    - (bytes
                        .iter()
                        .rev()
                        .take_while(|b| b.is_ascii_whitespace())
                        .count())
            }
        };
        for cut in 0..bytes.len() {
            let r = check_damaged(name, &bytes[..cut]);
            // Any prefix of an OBJ file is an OBJ file; every other format announces its size.
            if !name.ends_with(".obj") && cut < whole_from {
                assert!(r.is_err(), "{name} cut at {cut} was accepted");
            }
        }
    }
}

#[test]
fn corrupted_files_are_errors_or_valid_meshes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for name in CUBES {
        let original = std::fs::read(data(name)).unwrap();
        for _ in 0..400 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.next() % 3 {
                let at = (rng.next() % bytes.len() as u64) as usize;
                match rng.next() % 3 {
                    0 => bytes[at] ^= 1 << (rng.next() % 8),
                    1 => bytes[at] = b"0123456789-+.e /\nnaif"[(rng.next() % 21) as usize],
                    _ => bytes[at] = rng.next() as u8,
                }
            }
            let _ = check_damaged(name, &bytes);
        }
    }
}
