//! STL (ASCII and binary). Binary facets are read by `stl_io`; ASCII is read here, line by
//! line, so that an error names the line holding the bad value and a file of several
//! `solid ... endsolid` blocks (what many exporters write, one block per part) is read whole.
//!
//! `stl_io` decides ASCII versus binary by whether the file starts with `solid `. Real files
//! break that rule both ways: binary files whose 80-byte header begins with `solid` (common in
//! CAD exports) and ASCII files with a bare `solid` line. This layer decides by the binary
//! size rule first (84 + 50 × facet count bytes). Identical corner positions are merged into
//! one vertex, so a closed STL mesh becomes a closed indexed mesh.

use super::{
    check_not_empty, finish_mesh, guard, read_file, skip_bom, LoadError, LoadErrorKind, Location,
};
use crate::math::Vec3;
use crate::mesh::Mesh;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, ErrorKind};
use std::path::Path;

const HEADER: usize = 84;
const FACET: usize = 50;

/// Reads an STL file; warnings are printed to stderr (see [`load_stl_with_report`]).
pub fn load_stl(path: &Path) -> Result<Mesh, LoadError> {
    let (mesh, warnings) = load_stl_with_report(path)?;
    super::print_warnings(&warnings);
    Ok(mesh)
}

/// Reads an ASCII or binary STL file; facet normals and attribute bytes are ignored.
pub fn load_stl_with_report(path: &Path) -> Result<(Mesh, Vec<String>), LoadError> {
    let bytes = read_file(path)?;
    parse_stl(path, &bytes)
}

/// Parses STL contents already in memory; `path` is used only in messages.
pub fn parse_stl(path: &Path, bytes: &[u8]) -> Result<(Mesh, Vec<String>), LoadError> {
    check_not_empty(path, bytes)?;
    let mut warnings = Vec::new();
    let binary_count = (bytes.len() >= HEADER)
        .then(|| u32::from_le_bytes([bytes[80], bytes[81], bytes[82], bytes[83]]) as u64);
    let exact_binary =
        binary_count.is_some_and(|n| HEADER as u64 + FACET as u64 * n == bytes.len() as u64);
    let text = skip_bom(bytes);
    let starts_solid =
        text.starts_with(b"solid") && text.get(5).is_none_or(|b| b.is_ascii_whitespace());
    // Text never holds NUL bytes; binary headers and floats nearly always do. This keeps a
    // truncated binary file whose header says `solid` from being read as text.
    let looks_binary = bytes[..bytes.len().min(4096)].contains(&0);
    if starts_solid && !exact_binary && !looks_binary {
        let welded = read_ascii(path, text)?;
        return finish_mesh(path, welded.positions, welded.indices, warnings);
    }

    let Some(count) = binary_count else {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Truncated,
            Location::default().with_byte_offset(bytes.len() as u64),
            format!(
                "not ASCII STL (no `solid` line) and too short for binary STL: {} bytes, \
                 the header alone is {HEADER}",
                bytes.len()
            ),
        ));
    };
    let expected = HEADER as u64 + FACET as u64 * count;
    let len = bytes.len() as u64;
    if len < expected {
        let complete = (len - HEADER as u64) / FACET as u64;
        return Err(LoadError::new(
            path,
            LoadErrorKind::Truncated,
            Location::element("facet", complete as usize)
                .with_byte_offset(HEADER as u64 + FACET as u64 * complete),
            format!(
                "binary STL announces {count} facets ({expected} bytes) but the file has \
                 {len} bytes"
            ),
        ));
    }
    if len > expected {
        warnings.push(format!(
            "{}: ignored {} bytes after the last of {count} binary STL facets",
            path.display(),
            len - expected
        ));
    }
    let input: Cow<[u8]> = if bytes.starts_with(b"solid") {
        // The header text is free-form; hide its `solid` from stl_io's ASCII probe.
        let mut v = bytes.to_vec();
        v[..5].copy_from_slice(b"SOLID");
        Cow::Owned(v)
    } else {
        Cow::Borrowed(bytes)
    };
    let welded = guard(path, || read_binary(path, &input))?;
    finish_mesh(path, welded.positions, welded.indices, warnings)
}

/// Triangles with equal corners sharing one vertex.
#[derive(Default)]
struct Welded {
    positions: Vec<Vec3>,
    indices: Vec<[u32; 3]>,
    // Keyed by bit pattern (with -0 folded into +0 by the caller).
    seen: HashMap<[u32; 3], u32>,
}

impl Welded {
    /// Adds a triangle; `false` once the mesh needs more vertices than a `u32` can index.
    fn push(&mut self, corners: [Vec3; 3]) -> bool {
        let mut tri = [0u32; 3];
        for (slot, p) in tri.iter_mut().zip(corners) {
            let key = p.to_array().map(f32::to_bits);
            let next = self.positions.len();
            if next >= u32::MAX as usize && !self.seen.contains_key(&key) {
                return false;
            }
            let positions = &mut self.positions;
            *slot = *self.seen.entry(key).or_insert_with(|| {
                positions.push(p);
                next as u32
            });
        }
        self.indices.push(tri);
        true
    }
}

const TOO_MANY: &str = "more than 2^32 - 1 distinct vertices";

fn read_binary(path: &Path, bytes: &[u8]) -> Result<Welded, LoadError> {
    let mut cursor = Cursor::new(bytes);
    let reader = stl_io::create_stl_reader(&mut cursor).map_err(|e| {
        LoadError::new(
            path,
            LoadErrorKind::Header,
            Location::default().with_byte_offset(0),
            format!("not a valid STL header: {e}"),
        )
    })?;
    let mut welded = Welded::default();
    for (i, triangle) in reader.enumerate() {
        let here = || Location::element("facet", i).with_byte_offset((HEADER + FACET * i) as u64);
        let t = triangle.map_err(|e| {
            let kind = match e.kind() {
                ErrorKind::UnexpectedEof => LoadErrorKind::Truncated,
                _ if e.to_string().contains("finite") => LoadErrorKind::NonFinite,
                _ => LoadErrorKind::Syntax,
            };
            LoadError::new(path, kind, here(), e.to_string())
        })?;
        let corners = t
            .vertices
            .map(|v| Vec3::new(v[0] + 0.0, v[1] + 0.0, v[2] + 0.0));
        if let Some(p) = corners.iter().find(|p| !p.is_finite()) {
            return Err(LoadError::new(
                path,
                LoadErrorKind::NonFinite,
                here(),
                format!(
                    "facet {i} has a non-finite corner ({} {} {})",
                    p.x, p.y, p.z
                ),
            ));
        }
        if !welded.push(corners) {
            return Err(LoadError::new(
                path,
                LoadErrorKind::Syntax,
                here(),
                TOO_MANY,
            ));
        }
    }
    Ok(welded)
}

/// The non-blank lines of a text, split into words, with their 1-based numbers.
struct Words<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The number of the last line read; at the end, the file's last line.
    line: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self, path: &Path) -> Result<Option<(usize, Vec<&'a str>)>, LoadError> {
        while self.pos < self.bytes.len() {
            let start = self.pos;
            let end = self.bytes[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.bytes.len(), |p| start + p);
            self.pos = end + 1;
            self.line += 1;
            let text = std::str::from_utf8(&self.bytes[start..end]).map_err(|_| {
                LoadError::new(
                    path,
                    LoadErrorKind::Syntax,
                    Location::line(self.line),
                    "the line is not text",
                )
            })?;
            let words: Vec<&str> = text.split_whitespace().collect();
            if !words.is_empty() {
                return Ok(Some((self.line, words)));
            }
        }
        Ok(None)
    }
}

/// The start of a line's words for a message.
fn shown(words: &[&str]) -> String {
    words.join(" ").chars().take(60).collect()
}

/// Reads ASCII STL: any number of `solid ... endsolid` blocks, blank lines anywhere, nothing
/// else after the last block. Each facet is `facet normal nx ny nz`, `outer loop`, three
/// `vertex x y z`, `endloop`, `endfacet`, one statement a line.
fn read_ascii(path: &Path, text: &[u8]) -> Result<Welded, LoadError> {
    let mut r = AsciiReader {
        path,
        lines: Words {
            bytes: text,
            pos: 0,
            line: 0,
        },
        facet: 0,
        opened: 1,
    };
    let mut welded = Welded::default();
    let mut solids = 0usize;
    while let Some((n, words)) = r.lines.next(path)? {
        if words[0] != "solid" {
            let message = if solids == 0 {
                format!("expected `solid`, found `{}`", shown(&words))
            } else {
                format!(
                    "expected another `solid` or the end of the file after `endsolid`, found \
                     `{}`",
                    shown(&words)
                )
            };
            return Err(LoadError::new(
                path,
                LoadErrorKind::Syntax,
                Location::line(n),
                message,
            ));
        }
        solids += 1;
        r.opened = n;
        while let Some(corners) = r.facet()? {
            if !welded.push(corners) {
                return Err(r.error(LoadErrorKind::Syntax, r.lines.line, TOO_MANY.into()));
            }
            r.facet += 1;
        }
    }
    Ok(welded)
}

struct AsciiReader<'a> {
    path: &'a Path,
    lines: Words<'a>,
    /// The index of the facet being read, counted over all solids.
    facet: usize,
    /// The line of the current `solid`.
    opened: usize,
}

impl<'a> AsciiReader<'a> {
    fn error(&self, kind: LoadErrorKind, line: usize, message: String) -> LoadError {
        LoadError::new(
            self.path,
            kind,
            Location::element("facet", self.facet).with_line(line),
            message,
        )
    }

    /// The next non-blank line, which must exist because `wanted` belongs there.
    fn expect(&mut self, wanted: &str) -> Result<(usize, Vec<&'a str>), LoadError> {
        match self.lines.next(self.path)? {
            Some(line) => Ok(line),
            None => Err(self.error(
                LoadErrorKind::Truncated,
                self.lines.line.max(1),
                format!(
                    "the file ends where {wanted} belongs (in the solid opened on line {})",
                    self.opened
                ),
            )),
        }
    }

    /// A line that must be exactly `wanted`.
    fn statement(&mut self, wanted: &[&str]) -> Result<(), LoadError> {
        let wanted = wanted.join(" ");
        let (n, words) = self.expect(&format!("`{wanted}`"))?;
        if words.join(" ") != wanted {
            let message = format!("expected `{wanted}`, found `{}`", shown(&words));
            return Err(self.error(LoadErrorKind::Syntax, n, message));
        }
        Ok(())
    }

    /// The corners of the next facet, or `None` at the `endsolid` closing the solid.
    fn facet(&mut self) -> Result<Option<[Vec3; 3]>, LoadError> {
        let (n, words) = self.expect("`facet normal` or `endsolid`")?;
        if words[0] == "endsolid" {
            return Ok(None);
        }
        if words.len() != 5 || words[0] != "facet" || words[1] != "normal" {
            let message = format!(
                "expected `facet normal nx ny nz` or `endsolid`, found `{}`",
                shown(&words)
            );
            return Err(self.error(LoadErrorKind::Syntax, n, message));
        }
        // The normal is not used (the winding gives it), but a facet line without one is
        // not STL.
        if let Some(bad) = words[2..].iter().find(|w| w.parse::<f32>().is_err()) {
            let message = format!("facet normal component `{bad}` is not a number");
            return Err(self.error(LoadErrorKind::Syntax, n, message));
        }
        self.statement(&["outer", "loop"])?;
        let mut corners = [Vec3::ZERO; 3];
        for corner in &mut corners {
            let (n, words) = self.expect("`vertex`")?;
            if words.len() != 4 || words[0] != "vertex" {
                let message = format!("expected `vertex x y z`, found `{}`", shown(&words));
                return Err(self.error(LoadErrorKind::Syntax, n, message));
            }
            let mut xyz = [0.0f32; 3];
            for (c, word) in xyz.iter_mut().zip(&words[1..]) {
                let Ok(v) = word.parse::<f32>() else {
                    let message = format!("vertex coordinate `{word}` is not a number");
                    return Err(self.error(LoadErrorKind::Syntax, n, message));
                };
                if !v.is_finite() {
                    let message = format!("vertex coordinate `{word}` is not a finite f32");
                    return Err(self.error(LoadErrorKind::NonFinite, n, message));
                }
                // Fold -0 into +0 so that the two weld into one vertex.
                *c = v + 0.0;
            }
            *corner = Vec3::new(xyz[0], xyz[1], xyz[2]);
        }
        self.statement(&["endloop"])?;
        self.statement(&["endfacet"])?;
        Ok(Some(corners))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ascii_facet(a: [f32; 3], b: [f32; 3], c: [f32; 3]) -> String {
        let v = |p: [f32; 3]| format!("    vertex {} {} {}\n", p[0], p[1], p[2]);
        format!(
            "facet normal 0 0 1\n  outer loop\n{}{}{}  endloop\nendfacet\n",
            v(a),
            v(b),
            v(c)
        )
    }

    #[test]
    fn shared_corners_merge_and_bare_solid_lines_are_ascii() {
        let text = format!(
            "solid\n{}{}endsolid\n",
            ascii_facet([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
            ascii_facet([1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, -0.0])
        );
        let (m, w) = parse_stl(Path::new("t.stl"), text.as_bytes()).unwrap();
        assert!(w.is_empty());
        assert_eq!(m.triangle_count(), 2);
        assert_eq!(m.positions.len(), 4);
    }

    #[test]
    fn ascii_errors_name_the_facet_and_the_bad_line() {
        let good = ascii_facet([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
        let bad = good.replace("vertex 1 0 0", "vertex 1 0");
        let text = format!("solid x\n{good}{bad}endsolid x\n");
        let e = parse_stl(Path::new("t.stl"), text.as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax);
        assert_eq!(e.location.element, Some(("facet".to_string(), 1)));
        assert_eq!(e.location.line, Some(12), "the line of the bad vertex: {e}");
    }

    #[test]
    fn binary_with_a_solid_header_is_binary() {
        let mut b = vec![0u8; 84];
        b[..12].copy_from_slice(b"solid binary");
        b[80..84].copy_from_slice(&1u32.to_le_bytes());
        for v in [
            0.0f32, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&[0, 0]);
        let (m, _) = parse_stl(Path::new("t.stl"), &b).unwrap();
        assert_eq!(m.triangle_count(), 1);
        // One byte short: truncated, at the offset of the incomplete facet.
        let e = parse_stl(Path::new("t.stl"), &b[..b.len() - 1]).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Truncated, "{e}");
        assert_eq!(e.location.byte_offset, Some(84), "{e}");
    }
}
