//! STL (ASCII and binary) through `stl_io`.
//!
//! `stl_io` decides ASCII versus binary by whether the file starts with `solid `. Real files
//! break that rule both ways: binary files whose 80-byte header begins with `solid` (common in
//! CAD exports) and ASCII files with a bare `solid` line. This layer decides by the binary
//! size rule first (84 + 50 × facet count bytes) and hands `stl_io` an input it classifies
//! the same way. Identical corner positions are merged into one vertex, so a closed STL mesh
//! becomes a closed indexed mesh.

use super::{check_not_empty, finish_mesh, guard, read_file, LoadError, LoadErrorKind, Location};
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
    let starts_solid =
        bytes.starts_with(b"solid") && bytes.get(5).is_none_or(|b| b.is_ascii_whitespace());
    // Text never holds NUL bytes; binary headers and floats nearly always do. This keeps a
    // truncated binary file whose header says `solid` from being read as text.
    let looks_binary = bytes[..bytes.len().min(4096)].contains(&0);
    let ascii = starts_solid && !exact_binary && !looks_binary;

    let input: Cow<[u8]> = if ascii {
        if bytes.get(5) == Some(&b' ') {
            Cow::Borrowed(bytes)
        } else {
            // A bare `solid` line: stl_io wants `solid ` before it reads text.
            let mut v = b"solid ".to_vec();
            v.extend_from_slice(&bytes[5..]);
            Cow::Owned(v)
        }
    } else {
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
        if starts_solid || bytes.starts_with(b"solid ") {
            // The header text is free-form; hide its `solid` from stl_io's ASCII probe.
            let mut v = bytes.to_vec();
            v[..5].copy_from_slice(b"SOLID");
            Cow::Owned(v)
        } else {
            Cow::Borrowed(bytes)
        }
    };

    let (positions, indices) = guard(path, || read_triangles(path, &input, ascii))?;
    finish_mesh(path, positions, indices, warnings)
}

type Parsed = (Vec<Vec3>, Vec<[u32; 3]>);

fn read_triangles(path: &Path, bytes: &[u8], ascii: bool) -> Result<Parsed, LoadError> {
    let mut cursor = Cursor::new(bytes);
    let reader = stl_io::create_stl_reader(&mut cursor).map_err(|e| {
        LoadError::new(
            path,
            LoadErrorKind::Header,
            Location::line(1),
            format!("not a valid STL header: {e}"),
        )
    })?;
    let mut positions = Vec::new();
    let mut indices = Vec::new();
    // Keyed by bit pattern (with -0 folded into +0): equal corners share one vertex.
    let mut seen: HashMap<[u32; 3], u32> = HashMap::new();
    for (i, triangle) in reader.enumerate() {
        let where_ = || {
            if ascii {
                Location::element("facet", i).with_line(ascii_facet_line(bytes, i))
            } else {
                Location::element("facet", i).with_byte_offset((HEADER + FACET * i) as u64)
            }
        };
        let t = triangle.map_err(|e| {
            let kind = match e.kind() {
                ErrorKind::UnexpectedEof => LoadErrorKind::Truncated,
                _ if e.to_string().contains("finite") => LoadErrorKind::NonFinite,
                _ => LoadErrorKind::Syntax,
            };
            LoadError::new(path, kind, where_(), e.to_string())
        })?;
        let mut tri = [0u32; 3];
        for (slot, v) in tri.iter_mut().zip(t.vertices.iter()) {
            let p = Vec3::new(v[0] + 0.0, v[1] + 0.0, v[2] + 0.0);
            if !p.is_finite() {
                return Err(LoadError::new(
                    path,
                    LoadErrorKind::NonFinite,
                    where_(),
                    format!(
                        "facet {i} has a non-finite corner ({} {} {})",
                        p.x, p.y, p.z
                    ),
                ));
            }
            let key = p.to_array().map(f32::to_bits);
            let next = positions.len();
            let index = *seen.entry(key).or_insert_with(|| {
                positions.push(p);
                next as u32
            });
            if positions.len() > u32::MAX as usize {
                return Err(LoadError::new(
                    path,
                    LoadErrorKind::Syntax,
                    where_(),
                    "more than 2^32 - 1 distinct vertices",
                ));
            }
            *slot = index;
        }
        indices.push(tri);
    }
    Ok((positions, indices))
}

/// The line on which ASCII facet `index` starts (stl_io reports errors by facet, not line).
fn ascii_facet_line(bytes: &[u8], index: usize) -> usize {
    let mut facets = 0;
    let mut last = 1;
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let first = line
            .split(|b| b.is_ascii_whitespace())
            .find(|w| !w.is_empty());
        if first == Some(b"facet".as_slice()) {
            if facets == index {
                return n + 1;
            }
            facets += 1;
            last = n + 1;
        }
    }
    // The facet was never started (e.g. the file ends where it should be): the last line.
    if facets > 0 {
        bytes.split(|&b| b == b'\n').count().max(last)
    } else {
        2
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
    fn ascii_errors_name_the_facet_and_its_line() {
        let good = ascii_facet([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
        let bad = good.replace("vertex 1 0 0", "vertex 1 0");
        let text = format!("solid x\n{good}{bad}endsolid x\n");
        let e = parse_stl(Path::new("t.stl"), text.as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax);
        assert_eq!(e.location.element, Some(("facet".to_string(), 1)));
        assert_eq!(e.location.line, Some(9), "{e}");
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
