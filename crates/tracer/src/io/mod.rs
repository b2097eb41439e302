//! Mesh files: Wavefront OBJ, PLY (ASCII and binary, both byte orders) and STL (ASCII and
//! binary), read with the ecosystem's parsers (`tobj`, `ply-rs-bw`, `stl_io`) under a thin
//! validation layer.
//!
//! Every reader returns a validated [`Mesh`] or a [`LoadError`] that names the file, the place
//! (line, element and index, or byte offset) and what was wrong. A reader never panics on bad
//! input: third-party parsers run under `catch_unwind`, so a panic inside one becomes an error
//! that names the file. Degenerate (zero-area) triangles are dropped and reported as warnings
//! by the `*_with_report` functions; the plain functions print those warnings to stderr.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tri.obj");
//! std::fs::write(&path, "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 4 3\n")?;
//! let (mesh, warnings) = prism_tracer::io::load_mesh_with_report(&path)?;
//! assert_eq!(mesh.triangle_count(), 2); // the quad is split into a fan of two triangles
//! assert!(warnings.is_empty());
//!
//! std::fs::write(&path, "v 0 0 0\nv 1 0 0\nf 1 2 7\n")?;
//! let err = prism_tracer::io::load_mesh(&path).unwrap_err();
//! assert!(err.to_string().contains("tri.obj: line 3"), "{err}");
//! # Ok(())
//! # }
//! ```

mod obj;
mod ply;
mod polygon;
mod stl;

use crate::mesh::{Mesh, MeshError};
use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use obj::{load_obj, load_obj_with_report, parse_obj};
pub use ply::{load_ply, load_ply_with_report, parse_ply};
pub use stl::{load_stl, load_stl_with_report, parse_stl};

/// The mesh file formats this module reads, chosen by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshFormat {
    Obj,
    Ply,
    Stl,
}

impl MeshFormat {
    /// The format for a path's extension (case-insensitive), if it is one this module reads.
    pub fn from_path(path: &Path) -> Option<MeshFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "obj" => Some(MeshFormat::Obj),
            "ply" => Some(MeshFormat::Ply),
            "stl" => Some(MeshFormat::Stl),
            _ => None,
        }
    }
}

/// What kind of problem a [`LoadError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// The file could not be read.
    Io,
    /// The extension is not one of `.obj`, `.ply`, `.stl`.
    UnknownFormat,
    /// The file has no content at all.
    Empty,
    /// A header that is not what the format requires (PLY's `ply`/`format`/`end_header`).
    Header,
    /// Text or bytes that do not parse.
    Syntax,
    /// The file ends before the data it announces.
    Truncated,
    /// A required element or property (PLY `vertex`, `face`, `x`, `vertex_indices`) is absent.
    MissingElement,
    /// A property has a type that cannot hold what it must (a list where a number belongs, a
    /// float vertex index).
    WrongType,
    /// A face refers to a vertex that does not exist.
    IndexOutOfRange,
    /// A coordinate is NaN or infinite.
    NonFinite,
    /// The file parses but holds no usable triangle.
    NoTriangles,
    /// A third-party parser panicked; the panic was caught and turned into this error.
    ParserPanic,
}

/// Where in a file a problem was found; any part may be unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based line number (text formats and text headers).
    pub line: Option<usize>,
    /// The element kind and its 0-based index, e.g. `("face", 3)` or `("facet", 10)`.
    pub element: Option<(String, usize)>,
    /// Byte offset from the start of the file (binary formats).
    pub byte_offset: Option<u64>,
}

impl Location {
    pub fn line(line: usize) -> Location {
        Location {
            line: Some(line),
            ..Location::default()
        }
    }
    pub fn element(kind: &str, index: usize) -> Location {
        Location {
            element: Some((kind.to_string(), index)),
            ..Location::default()
        }
    }
    pub fn with_line(mut self, line: usize) -> Location {
        self.line = Some(line);
        self
    }
    pub fn with_byte_offset(mut self, offset: u64) -> Location {
        self.byte_offset = Some(offset);
        self
    }
    pub fn is_unknown(&self) -> bool {
        self.line.is_none() && self.element.is_none() && self.byte_offset.is_none()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some((kind, index)) = &self.element {
            parts.push(format!("{} {index}", quote(kind)));
        }
        if let Some(offset) = self.byte_offset {
            parts.push(format!("byte offset {offset}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A mesh file that could not be read: the file, where in it, what kind of problem, and a
/// one-line description. `Display` gives `path: location: message` on a single line.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{}", self.render())]
pub struct LoadError {
    pub path: PathBuf,
    pub kind: LoadErrorKind,
    pub location: Location,
    pub message: String,
}

impl LoadError {
    pub fn new(
        path: &Path,
        kind: LoadErrorKind,
        location: Location,
        message: impl Into<String>,
    ) -> LoadError {
        LoadError {
            path: path.to_path_buf(),
            kind,
            location,
            message: one_line(&message.into()),
        }
    }

    fn render(&self) -> String {
        if self.location.is_unknown() {
            format!("{}: {}", self.path.display(), self.message)
        } else {
            format!(
                "{}: {}: {}",
                self.path.display(),
                self.location,
                self.message
            )
        }
    }
}

/// Reads a mesh file, choosing the reader by extension (`.obj`, `.ply`, `.stl`, any case).
/// Warnings (dropped degenerate triangles, ignored data) are printed to stderr; use
/// [`load_mesh_with_report`] to receive them instead.
pub fn load_mesh(path: &Path) -> Result<Mesh, LoadError> {
    let (mesh, warnings) = load_mesh_with_report(path)?;
    print_warnings(&warnings);
    Ok(mesh)
}

/// Reads a mesh file like [`load_mesh`] and returns its warnings (each naming the file)
/// instead of printing them.
pub fn load_mesh_with_report(path: &Path) -> Result<(Mesh, Vec<String>), LoadError> {
    match MeshFormat::from_path(path) {
        Some(MeshFormat::Obj) => load_obj_with_report(path),
        Some(MeshFormat::Ply) => load_ply_with_report(path),
        Some(MeshFormat::Stl) => load_stl_with_report(path),
        None => Err(LoadError::new(
            path,
            LoadErrorKind::UnknownFormat,
            Location::default(),
            "unknown mesh file extension; expected .obj, .ply or .stl",
        )),
    }
}

/// Parses mesh file contents already in memory; `path` is used only in messages.
pub fn parse_mesh(
    path: &Path,
    format: MeshFormat,
    bytes: &[u8],
) -> Result<(Mesh, Vec<String>), LoadError> {
    match format {
        MeshFormat::Obj => parse_obj(path, bytes),
        MeshFormat::Ply => parse_ply(path, bytes),
        MeshFormat::Stl => parse_stl(path, bytes),
    }
}

pub(crate) fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Reads a whole file: a regular one only (see [`crate::regular`]). A mesh is named by a
/// scene file or on the command line, and a FIFO there would hang the render, `/dev/zero`
/// fill its memory.
fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    crate::regular::read(path)
        .map_err(|e| LoadError::new(path, LoadErrorKind::Io, Location::default(), e.to_string()))
}

/// Reads a whole file like [`read_file`], after reading its first `head` bytes (fewer if the
/// file is shorter) and passing them to `check`: a file that `check` refuses is not read
/// whole, which for a file of gigabytes that is no mesh at all saves a long wait and the memory.
fn read_file_after(
    path: &Path,
    head: usize,
    check: impl FnOnce(&[u8]) -> Result<(), LoadError>,
) -> Result<Vec<u8>, LoadError> {
    use crate::regular::OpenError;
    use std::io::Read;
    let io =
        |e: OpenError| LoadError::new(path, LoadErrorKind::Io, Location::default(), e.to_string());
    let (mut file, len) = crate::regular::open(path).map_err(io)?;
    let mut bytes = crate::regular::read_head(&mut file, head).map_err(|e| io(OpenError::Io(e)))?;
    check(&bytes)?;
    // The length only sizes the buffer: the file may have changed since it was taken.
    let rest = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .saturating_sub(bytes.len());
    bytes
        .try_reserve_exact(rest)
        .map_err(|_| io(OpenError::Io(std::io::ErrorKind::OutOfMemory.into())))?;
    file.read_to_end(&mut bytes)
        .map_err(|e| io(OpenError::Io(e)))?;
    Ok(bytes)
}

fn check_not_empty(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if skip_bom(bytes).iter().all(|b| b.is_ascii_whitespace()) {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Empty,
            Location::default(),
            "the file is empty",
        ));
    }
    Ok(())
}

/// The UTF-8 byte-order mark some Windows editors put before text.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading byte-order mark. The mark holds no newline, so line numbers
/// counted in the rest are the file's own.
fn skip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// Runs a third-party parser, turning a panic inside it into an error: a parser bug must not
/// bring down a render over a bad input file.
fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T, LoadError>) -> Result<T, LoadError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(LoadError::new(
                path,
                LoadErrorKind::ParserPanic,
                Location::default(),
                format!("the parser failed on malformed input ({what})"),
            ))
        }
    }
}

/// Builds the validated mesh and the warnings every reader shares.
fn finish_mesh(
    path: &Path,
    positions: Vec<crate::math::Vec3>,
    indices: Vec<[u32; 3]>,
    mut warnings: Vec<String>,
) -> Result<(Mesh, Vec<String>), LoadError> {
    let before = indices.len();
    if before == 0 {
        return Err(no_triangles(path, "the file holds no faces", &warnings));
    }
    let mesh = Mesh::new(positions, indices).map_err(|e| mesh_error(path, e))?;
    let dropped = mesh.dropped_degenerate();
    if mesh.triangle_count() == 0 {
        let message = format!("all {before} triangles are degenerate (zero area)");
        return Err(no_triangles(path, &message, &warnings));
    }
    if dropped > 0 {
        warnings.push(format!(
            "{}: dropped {dropped} degenerate (zero-area) triangle{} of {before}",
            path.display(),
            if dropped == 1 { "" } else { "s" }
        ));
    }
    Ok((mesh, warnings))
}

/// The error for a file without a usable triangle. The warnings gathered so far often say why
/// (short faces skipped, data after the announced end), and an error is all the user sees.
fn no_triangles(path: &Path, message: &str, warnings: &[String]) -> LoadError {
    let prefix = format!("{}: ", path.display());
    let notes: Vec<&str> = warnings
        .iter()
        .map(|w| w.strip_prefix(&prefix).unwrap_or(w))
        .collect();
    let message = if notes.is_empty() {
        message.to_string()
    } else {
        format!("{message} ({})", notes.join("; "))
    };
    LoadError::new(
        path,
        LoadErrorKind::NoTriangles,
        Location::default(),
        message,
    )
}

fn mesh_error(path: &Path, e: MeshError) -> LoadError {
    let (kind, location) = match &e {
        MeshError::NonFiniteVertex { index, .. } => (
            LoadErrorKind::NonFinite,
            Location::element("vertex", *index),
        ),
        MeshError::IndexOutOfRange { triangle, .. } => (
            LoadErrorKind::IndexOutOfRange,
            Location::element("triangle", *triangle),
        ),
        MeshError::TooManyVertices(_) => (LoadErrorKind::Syntax, Location::default()),
    };
    LoadError::new(path, kind, location, e.to_string())
}

/// Third-party messages come with embedded newlines and tabs; an error is one line.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in s.split(['\n', '\r', '\t']).filter(|p| !p.trim().is_empty()) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(part.trim());
    }
    out
}

/// Text from a file as a message quotes it: its first [`QUOTED_CHARS`] characters, an
/// ellipsis for the rest, control characters escaped. A token or line of a damaged file may
/// be megabytes long, or hold bytes a terminal acts on; a message is one line for a person.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == QUOTED_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// The most characters of a file's text that a message quotes.
const QUOTED_CHARS: usize = 80;

/// `bytes` with every carriage return that is not part of a CR LF pair turned into a line feed,
/// so that files saved with old Mac line endings read line by line like any other. One byte
/// for one byte: offsets and line numbers in the result are the file's own.
fn lone_cr_to_lf(bytes: &[u8]) -> Cow<'_, [u8]> {
    let lone = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(lone) {
        return Cow::Borrowed(bytes);
    }
    let mut out = bytes.to_vec();
    for (i, b) in out.iter_mut().enumerate() {
        if lone(i) {
            *b = b'\n';
        }
    }
    Cow::Owned(out)
}

/// 1-based line number of byte `offset` in `bytes`.
fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Writes `polygon` into `indices` as triangles: a fan around its first vertex, cut into ears
/// by `cutter` where the polygon is concave (see [`polygon`]). Every index must be below
/// `positions.len()`.
fn fan_and_cut(
    polygon: &[u32],
    positions: &[crate::math::Vec3],
    indices: &mut Vec<[u32; 3]>,
    cutter: &mut polygon::Cutter,
) {
    let start = indices.len();
    fan(polygon, indices);
    if polygon.len() > 3 {
        cutter.cut(positions, &mut indices[start..]);
    }
}

/// The warning for the concave polygons `cutter` had to leave as fans, if any.
fn warn_unclipped(path: &Path, cutter: &polygon::Cutter, warnings: &mut Vec<String>) {
    let what = match cutter.unclipped {
        0 => return,
        1 => "a concave polygon that crosses itself or has more than 1024 vertices was cut as a \
              fan from its first vertex, which may cover area outside it"
            .to_string(),
        n => format!(
            "{n} concave polygons that cross themselves or have more than 1024 vertices were cut \
             as fans from their first vertex, which may cover area outside them"
        ),
    };
    warnings.push(format!("{}: {what}", path.display()));
}

/// Triangulates a polygon as a fan around its first vertex.
fn fan(polygon: &[u32], out: &mut Vec<[u32; 3]>) {
    if let Some((&first, rest)) = polygon.split_first() {
        for w in rest.windows(2) {
            out.push([first, w[0], w[1]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_single_lines_with_the_location() {
        let e = LoadError::new(
            Path::new("a/b.ply"),
            LoadErrorKind::Syntax,
            Location::element("face", 3).with_line(12),
            "Couldn't read.\n\tString: 'x'\n\tError: bad",
        );
        assert_eq!(
            e.to_string(),
            "a/b.ply: line 12, face 3: Couldn't read.; String: 'x'; Error: bad"
        );
        let e = LoadError::new(
            Path::new("c.stl"),
            LoadErrorKind::Empty,
            Location::default(),
            "the file is empty",
        );
        assert_eq!(e.to_string(), "c.stl: the file is empty");
    }

    #[test]
    fn quotes_are_cut_with_an_ellipsis_and_control_characters_escaped() {
        assert_eq!(quote("f 1 2 3"), "f 1 2 3");
        let exact = "é".repeat(QUOTED_CHARS);
        assert_eq!(quote(&exact), exact);
        let long = "x".repeat(1 << 20);
        assert_eq!(quote(&long), format!("{}…", &long[..QUOTED_CHARS]));
        assert_eq!(quote("\u{12}f 1\t2"), "\\u{12}f 1\\t2");
    }

    #[test]
    fn fans_cover_polygons_and_skip_short_ones() {
        let mut out = Vec::new();
        fan(&[0, 1, 2, 3, 4], &mut out);
        assert_eq!(out, vec![[0, 1, 2], [0, 2, 3], [0, 3, 4]]);
        out.clear();
        fan(&[0, 1], &mut out);
        fan(&[], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn lone_carriage_returns_end_lines_and_keep_offsets() {
        assert_eq!(&*lone_cr_to_lf(b"a\rb\r\nc\r"), b"a\nb\r\nc\n");
        assert!(matches!(lone_cr_to_lf(b"a\r\nb\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn no_triangles_says_what_was_ignored() {
        let w = vec!["m.obj: ignored 1 face with fewer than 3 vertices".to_string()];
        let e = finish_mesh(Path::new("m.obj"), Vec::new(), Vec::new(), w).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NoTriangles);
        assert_eq!(
            e.to_string(),
            "m.obj: the file holds no faces (ignored 1 face with fewer than 3 vertices)"
        );
    }

    #[test]
    fn formats_follow_the_extension_in_any_case() {
        assert_eq!(
            MeshFormat::from_path(Path::new("x/Bunny.PLY")),
            Some(MeshFormat::Ply)
        );
        assert_eq!(
            MeshFormat::from_path(Path::new("a.obj")),
            Some(MeshFormat::Obj)
        );
        assert_eq!(
            MeshFormat::from_path(Path::new("a.stl")),
            Some(MeshFormat::Stl)
        );
        assert_eq!(MeshFormat::from_path(Path::new("a.off")), None);
        assert_eq!(MeshFormat::from_path(Path::new("noext")), None);
        let err = load_mesh(Path::new("model.off")).unwrap_err();
        assert_eq!(err.kind, LoadErrorKind::UnknownFormat);
        assert!(err.to_string().starts_with("model.off: "), "{err}");
    }

    #[test]
    fn a_panicking_parser_becomes_an_error_naming_the_file() {
        let r: Result<(), LoadError> = guard(Path::new("bad.ply"), || panic!("index 9 of 3"));
        let err = r.unwrap_err();
        assert_eq!(err.kind, LoadErrorKind::ParserPanic);
        assert!(err.to_string().starts_with("bad.ply: "), "{err}");
        assert!(err.to_string().contains("index 9 of 3"), "{err}");
    }
}
