//! Wavefront OBJ through `tobj`.
//!
//! `tobj` reports what went wrong but not where, so on failure the reader re-parses ever
//! shorter prefixes of the file (a binary search over lines) to find the first line at which
//! the prefix stops parsing. That costs a few extra parses on the error path only.

use super::{
    check_not_empty, finish_mesh, guard, line_of_offset, read_file, LoadError, LoadErrorKind,
    Location,
};
use crate::math::Vec3;
use crate::mesh::Mesh;
use std::io::Cursor;
use std::path::Path;

/// Reads an OBJ file; warnings are printed to stderr (see [`load_obj_with_report`]).
pub fn load_obj(path: &Path) -> Result<Mesh, LoadError> {
    let (mesh, warnings) = load_obj_with_report(path)?;
    super::print_warnings(&warnings);
    Ok(mesh)
}

/// Reads an OBJ file: every object and group goes into one mesh, polygons are split into
/// fans, materials, normals and texture coordinates are ignored.
pub fn load_obj_with_report(path: &Path) -> Result<(Mesh, Vec<String>), LoadError> {
    let bytes = read_file(path)?;
    parse_obj(path, &bytes)
}

/// Parses OBJ text already in memory; `path` is used only in messages.
pub fn parse_obj(path: &Path, bytes: &[u8]) -> Result<(Mesh, Vec<String>), LoadError> {
    check_not_empty(path, bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        LoadError::new(
            path,
            LoadErrorKind::Syntax,
            Location::line(line_of_offset(bytes, e.valid_up_to()))
                .with_byte_offset(e.valid_up_to() as u64),
            "the file is not UTF-8 text",
        )
    })?;
    // tobj would read a byte-order mark as part of the first keyword and drop that line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut warnings = Vec::new();

    // tobj reads `l` (polyline) statements as faces, which would turn a three-point line into
    // a triangle. Lines are not surfaces: blank them (keeping line numbers) and say so.
    let polylines = text
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("l"))
        .count();
    let filtered;
    let text = if polylines > 0 {
        warnings.push(format!(
            "{}: ignored {polylines} polyline (`l`) statement{}",
            path.display(),
            if polylines == 1 { "" } else { "s" }
        ));
        filtered = text
            .split_inclusive('\n')
            .map(|l| {
                if l.split_whitespace().next() == Some("l") {
                    "\n"
                } else {
                    l
                }
            })
            .collect::<String>();
        filtered.as_str()
    } else {
        text
    };

    if let Some((line, failure)) = check_attribute_indices(text) {
        // tobj may fail on an earlier line; the first problem in the file is the one to name.
        let ends = line_ends(text);
        let before = &text[..if line >= 2 { ends[line - 2] } else { 0 }];
        if let Err(err) = parse_prefix(path, before) {
            return Err(locate_error(path, before, err));
        }
        return Err(error_at(path, text, &ends, line, failure));
    }
    let (positions, indices) = match parse_prefix(path, text) {
        Ok(parsed) => parsed,
        Err(err) => return Err(locate_error(path, text, err)),
    };
    finish_mesh(path, positions, indices, warnings)
}

/// What went wrong in one attempt, before the line is known.
struct ObjFailure {
    kind: LoadErrorKind,
    message: String,
}

type Parsed = (Vec<Vec3>, Vec<[u32; 3]>);

/// Parses `text` with tobj and merges all its models into one triangle list.
fn parse_prefix(path: &Path, text: &str) -> Result<Parsed, ObjFailure> {
    let options = tobj::LoadOptions {
        triangulate: true,
        single_index: false,
        // Points and two-vertex faces become degenerate triangles, so they are counted in the
        // degenerate-triangle warning rather than vanishing silently.
        ignore_points: false,
        ignore_lines: false,
    };
    let result = guard(path, || {
        tobj::load_obj_buf(&mut Cursor::new(text.as_bytes()), &options, |_| {
            // Materials do not come from MTL files in prism: scenes assign them.
            Err(tobj::LoadError::OpenFileFailed)
        })
        .map_err(|e| LoadError::new(path, tobj_kind(&e), Location::default(), e.to_string()))
    });
    let models = match result {
        Ok((models, _materials)) => models,
        Err(e) => {
            return Err(ObjFailure {
                kind: e.kind,
                message: e.message,
            })
        }
    };
    let mut positions = Vec::new();
    let mut indices = Vec::new();
    for model in &models {
        let m = &model.mesh;
        let base = positions.len();
        for p in m.positions.chunks_exact(3) {
            let v = Vec3::new(p[0], p[1], p[2]);
            if !v.is_finite() {
                return Err(ObjFailure {
                    kind: LoadErrorKind::NonFinite,
                    message: format!(
                        "a face uses a vertex with a non-finite coordinate ({} {} {})",
                        p[0], p[1], p[2]
                    ),
                });
            }
            positions.push(v);
        }
        let count = positions.len() - base;
        for t in m.indices.chunks_exact(3) {
            if let Some(&bad) = t.iter().find(|&&i| i as usize >= count) {
                // tobj checks this itself; a failure here is a tobj bug, still not a panic.
                return Err(ObjFailure {
                    kind: LoadErrorKind::IndexOutOfRange,
                    message: format!("a face refers to vertex {bad} of {count}"),
                });
            }
            let b = base as u32;
            indices.push([t[0] + b, t[1] + b, t[2] + b]);
        }
    }
    if positions.len() > u32::MAX as usize {
        return Err(ObjFailure {
            kind: LoadErrorKind::Syntax,
            message: format!(
                "{} vertices; at most 2^32 - 1 are supported",
                positions.len()
            ),
        });
    }
    Ok((positions, indices))
}

fn tobj_kind(e: &tobj::LoadError) -> LoadErrorKind {
    use tobj::LoadError as T;
    match e {
        T::OpenFileFailed | T::ReadError => LoadErrorKind::Io,
        T::FaceVertexOutOfBounds
        | T::FaceTexCoordOutOfBounds
        | T::FaceNormalOutOfBounds
        | T::FaceColorOutOfBounds => LoadErrorKind::IndexOutOfRange,
        _ => LoadErrorKind::Syntax,
    }
}

/// Checks the texture-coordinate and normal parts of face corners (`v/vt/vn`). The renderer
/// uses neither, but a wrong index means the file is not what its writer meant, and tobj
/// ignores such an index when the file has no `vt` or `vn` lines and overflows on a 0 or an
/// out-of-range negative one. Indices count from 1, negatives count back from the last line
/// read so far, as for positions. Returns the 1-based line of the first bad index.
fn check_attribute_indices(text: &str) -> Option<(usize, ObjFailure)> {
    let (mut texcoords, mut normals) = (0usize, 0usize);
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("vt") => texcoords += 1,
            Some("vn") => normals += 1,
            Some("f") => {
                for corner in words {
                    let mut parts = corner.split('/').skip(1);
                    let attributes = [
                        (parts.next(), texcoords, "texture coordinate", "vt"),
                        (parts.next(), normals, "normal", "vn"),
                    ];
                    for (part, count, what, keyword) in attributes {
                        // An empty part (`1//3`) means "none"; text that is not a number is a
                        // syntax error, which tobj reports.
                        let Some(Ok(index)) = part.filter(|p| !p.is_empty()).map(str::parse::<i64>)
                        else {
                            continue;
                        };
                        let message = if index == 0 {
                            format!("{what} index 0 is invalid: OBJ indices start at 1")
                        } else if index > 0 && index.unsigned_abs() > count as u64 {
                            format!(
                                "a face refers to {what} {index}, but only {count} `{keyword}` \
                                 line{} come before it",
                                if count == 1 { "" } else { "s" }
                            )
                        } else if index < 0 && index.unsigned_abs() > count as u64 {
                            format!(
                                "relative {what} index {index} reaches before the first \
                                 `{keyword}` line ({count} come before it)"
                            )
                        } else {
                            continue;
                        };
                        let failure = ObjFailure {
                            kind: LoadErrorKind::IndexOutOfRange,
                            message,
                        };
                        return Some((n + 1, failure));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Byte offsets just past each line: the prefix of k lines (1-based) is `text[..ends[k - 1]]`.
fn line_ends(text: &str) -> Vec<usize> {
    text.split_inclusive('\n')
        .scan(0, |acc, l| {
            *acc += l.len();
            Some(*acc)
        })
        .collect()
}

/// Finds the first line at which a prefix of the file fails and names it in the error.
fn locate_error(path: &Path, text: &str, full: ObjFailure) -> LoadError {
    let ends = line_ends(text);
    // Invariant: the prefix of `lo` lines parses, the prefix of `hi` lines fails.
    let (mut lo, mut hi) = (0usize, ends.len());
    let mut failure = full;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match parse_prefix(path, &text[..ends[mid - 1]]) {
            Ok(_) => lo = mid,
            Err(f) => {
                hi = mid;
                failure = f;
            }
        }
    }
    error_at(path, text, &ends, hi.max(1), failure)
}

/// The error for `failure` on 1-based `line`, quoting the start of that line.
fn error_at(
    path: &Path,
    text: &str,
    ends: &[usize],
    line: usize,
    failure: ObjFailure,
) -> LoadError {
    let start = if line >= 2 {
        ends.get(line - 2).copied().unwrap_or(text.len())
    } else {
        0
    };
    let end = ends.get(line - 1).copied().unwrap_or(text.len());
    let shown: String = text[start.min(end)..end].trim().chars().take(60).collect();
    LoadError::new(
        path,
        failure.kind,
        Location::line(line),
        format!("{} (`{shown}`)", failure.message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Mesh, Vec<String>), LoadError> {
        parse_obj(Path::new("t.obj"), text.as_bytes())
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("v 0 0 0\nv 1 0 0\nv 0 1 0\n# c\nf 1 2 3\nf 1 2 9\nf 1 2 3\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::IndexOutOfRange);
        assert_eq!(e.location.line, Some(6), "{e}");
        let e = parse("v 0 0 0\nv 1 x 0\nv 0 1 0\nf 1 2 3\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax);
        assert_eq!(e.location.line, Some(2), "{e}");
        let e = parse("v 0 0 0\nv 1 0 0\nv 0 nan 0\n\nf 1 2 3\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NonFinite);
        assert_eq!(e.location.line, Some(5), "{e}");
        let e = parse("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 0\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::IndexOutOfRange);
        assert_eq!(e.location.line, Some(4), "{e}");
    }

    #[test]
    fn out_of_range_texture_indices_are_errors_on_their_line() {
        // tobj computes `index * 2` on a wrapped negative index here, which overflows (a panic
        // in debug builds, a wrong index in release): either way an error naming the line.
        let e = parse("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1\nf 1/-9 2/-9 3/-9\n")
            .unwrap_err();
        assert!(
            matches!(
                e.kind,
                LoadErrorKind::ParserPanic | LoadErrorKind::IndexOutOfRange
            ),
            "{e}"
        );
        assert_eq!(e.location.line, Some(6), "{e}");
    }

    #[test]
    fn relative_indices_groups_and_polylines() {
        let (m, w) = parse(
            "o a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\no b\nv 0 0 1\nv 1 0 1\nv 0 1 1\nf 4 5 6\nl 1 2 3\n",
        )
        .unwrap();
        assert_eq!(m.triangle_count(), 2);
        assert_eq!(m.positions.len(), 6);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("polyline"), "{w:?}");
    }

    #[test]
    fn no_faces_is_an_error() {
        let e = parse("v 0 0 0\nv 1 0 0\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NoTriangles);
        let e = parse("  \n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Empty);
    }
}
