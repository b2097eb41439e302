//! Wavefront OBJ through `tobj`.
//!
//! `tobj` reports what went wrong but not where, so before it runs the reader checks the file
//! line by line itself (two passes: one over the `v` lines, one over the rest) for what tobj
//! would refuse, and names the first bad line. Faces may refer to vertices defined further
//! down (tobj accepts that), so an index is checked against the `v` lines of the whole file.

use super::polygon::Cutter;
use super::{
    check_not_empty, fan_and_cut, finish_mesh, guard, lone_cr_to_lf, quote, read_file,
    warn_unclipped, LoadError, LoadErrorKind, Location,
};
use crate::math::Vec3;
use crate::mesh::Mesh;
use std::borrow::Cow;
use std::collections::HashMap;
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
    let bytes = lone_cr_to_lf(bytes);
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            check_read_lines_are_text(path, &bytes)?;
            String::from_utf8_lossy(&bytes)
        }
    };
    // tobj would read a byte-order mark as part of the first keyword and drop that line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut warnings = Vec::new();

    // A light scan on every load, for what tobj does not check or report; the full one, which
    // costs about as much as a third of tobj's parse, only once something is known to be wrong.
    let scan = scan(text, false);
    if scan.problem.is_some() {
        return Err(locate(path, text, None));
    }

    // tobj reads `l` (polyline) statements as faces, which would turn a three-point line into
    // a triangle. Lines are not surfaces: blank them (keeping line numbers) and say so. Objects
    // and groups are blanked too: everything goes into one mesh anyway, and tobj checks a
    // face's indices when its object ends, so a face referring to a vertex defined in a later
    // object would fail.
    let polylines = scan.polylines;
    if polylines > 0 {
        warnings.push(format!(
            "{}: ignored {polylines} polyline (`l`) statement{}",
            path.display(),
            if polylines == 1 { "" } else { "s" }
        ));
    }
    // tobj reads the colours of `v x y z r g b` lines, and refuses a face one of whose vertices
    // has none. prism has no use for them: when only some vertices have one, they go.
    let some_coloured = scan.coloured > 0 && scan.coloured < scan.vertices;
    let filtered;
    let text = if polylines > 0 || scan.groups > 0 || some_coloured {
        filtered = text
            .split_inclusive('\n')
            .map(|l| {
                let mut words = l.split_whitespace();
                match words.next() {
                    Some("l" | "o" | "g") => Cow::Borrowed("\n"),
                    Some("v") if some_coloured && words.clone().nth(5).is_some() => {
                        let xyz: Vec<&str> = words.take(3).collect();
                        Cow::Owned(format!("v {}\n", xyz.join(" ")))
                    }
                    _ => Cow::Borrowed(l),
                }
            })
            .collect::<String>();
        filtered.as_str()
    } else {
        text
    };
    // tobj skips these (points are no surface, free-form geometry it does not tessellate),
    // which loses whatever they describe: said, like polylines.
    for (count, what) in [
        (scan.points, "point (`p`)"),
        (
            scan.free_form,
            "free-form curve or surface (`curv`, `surf`)",
        ),
    ] {
        if count > 0 {
            warnings.push(format!(
                "{}: ignored {count} {what} statement{}",
                path.display(),
                plural(count)
            ));
        }
    }
    if scan.short_faces > 0 {
        // What the PLY reader says of the same faces.
        warnings.push(format!(
            "{}: ignored {} face{} with fewer than 3 vertices",
            path.display(),
            scan.short_faces,
            if scan.short_faces == 1 { "" } else { "s" }
        ));
    }
    if let Some((line, word)) = scan.first_unknown {
        warnings.push(format!(
            "{}: ignored {} line{} that start{} with no OBJ statement (the first: line {line}, \
             `{}`)",
            path.display(),
            scan.unknown,
            plural(scan.unknown),
            if scan.unknown == 1 { "s" } else { "" },
            quote(word)
        ));
    }
    let mut cutter = Cutter::default();
    let (positions, indices) =
        parse_all(path, text, &mut cutter).map_err(|f| locate(path, text, Some(f)))?;
    warn_unclipped(path, &cutter, &mut warnings);
    finish_mesh(path, positions, indices, warnings)
}

/// The statements whose words prism reads. The other statements and comments (object,
/// group and material names, free text that Latin-1 editors write) are ignored, so bytes that
/// are not UTF-8 there need not cost the whole file.
const READ_STATEMENTS: [&str; 4] = ["v", "vt", "vn", "f"];

/// Refuses a file with a line that is not UTF-8 unless the line is a comment or a statement
/// prism ignores (see [`READ_STATEMENTS`]); those are let through, to be decoded lossily. A
/// line that does not even start with a statement is refused too: it is no OBJ text.
fn check_read_lines_are_text(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    let mut start = 0usize;
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let at = start;
        start += line.len() + 1;
        let Err(e) = std::str::from_utf8(line) else {
            continue;
        };
        // A BOM before the first line's first word, and a comment's text right after its
        // `#`, belong to no word prism reads.
        let line = if n == 0 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        if line.trim_ascii_start().starts_with(b"#") {
            continue;
        }
        let word = line
            .split(u8::is_ascii_whitespace)
            .find(|w| !w.is_empty())
            .unwrap_or_default();
        let word = std::str::from_utf8(word).ok();
        let what = match word {
            Some(w) if READ_STATEMENTS.contains(&w) => format!("the `{w}` line"),
            Some(w) if w.starts_with('#') || is_statement(w) => continue,
            _ => "the line".to_string(),
        };
        return Err(LoadError::new(
            path,
            LoadErrorKind::Syntax,
            Location::line(n + 1).with_byte_offset((at + e.valid_up_to()) as u64),
            format!(
                "{what} is not UTF-8 text (`{}`)",
                quote(String::from_utf8_lossy(line).trim())
            ),
        ));
    }
    Ok(())
}

/// The error for the first bad line of a file known to have one. Should the full scan find
/// nothing, tobj's own words (`failure`) are all there is to say.
fn locate(path: &Path, text: &str, failure: Option<ObjFailure>) -> LoadError {
    match (scan(text, true).problem, failure) {
        (Some(problem), _) => LoadError::new(
            path,
            problem.kind,
            Location::line(problem.line),
            format!("{} (`{}`)", problem.message, quote(problem.text.trim())),
        ),
        (None, Some(f)) => LoadError::new(path, f.kind, Location::default(), f.message),
        // The light scan's checks are a subset of the full scan's.
        (None, None) => LoadError::new(
            path,
            LoadErrorKind::Syntax,
            Location::default(),
            "the file could not be read",
        ),
    }
}

/// What went wrong, without a line: what tobj's result says.
struct ObjFailure {
    kind: LoadErrorKind,
    message: String,
}

type Parsed = (Vec<Vec3>, Vec<[u32; 3]>);

/// Parses `text` with tobj and merges all its models into one triangle list, polygons cut by
/// `cutter`.
fn parse_all(path: &Path, text: &str, cutter: &mut Cutter) -> Result<Parsed, ObjFailure> {
    let options = tobj::LoadOptions {
        // tobj's triangulation is a fan, wrong for concave polygons: prism cuts them itself.
        triangulate: false,
        single_index: false,
        // Faces of one or two vertices are no surfaces; the scan counts them for a warning.
        ignore_points: true,
        ignore_lines: true,
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
    let mut polygon = Vec::new();
    for model in &models {
        let m = &model.mesh;
        let base = positions.len();
        for p in m.positions.chunks_exact(3) {
            let v = Vec3::new(p[0], p[1], p[2]);
            if !v.is_finite() {
                // The scan checks this itself; a failure here is a scan bug, still an error.
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
        if let Some(&bad) = m.indices.iter().find(|&&i| i as usize >= count) {
            // tobj checks this itself; a failure here is a tobj bug, still not a panic.
            return Err(ObjFailure {
                kind: LoadErrorKind::IndexOutOfRange,
                message: format!("a face refers to vertex {bad} of {count}"),
            });
        }
        let b = base as u32;
        if m.face_arities.is_empty() {
            // Every face is a triangle.
            for t in m.indices.chunks_exact(3) {
                indices.push([t[0] + b, t[1] + b, t[2] + b]);
            }
            continue;
        }
        let mut at = 0;
        for &arity in &m.face_arities {
            let Some(face) = m.indices.get(at..at + arity as usize) else {
                break; // more arities than corners: a tobj bug, the rest is lost
            };
            at += arity as usize;
            polygon.clear();
            polygon.extend(face.iter().map(|&i| i + b));
            // Every position of this model is in place (checked against `count` above).
            fan_and_cut(&polygon, &positions, &mut indices, cutter);
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

/// The first line tobj would refuse (or whose data the renderer cannot use), and what the
/// reader needs to know of the rest.
struct Scan<'t> {
    problem: Option<Problem<'t>>,
    polylines: usize,
    /// `p` lines.
    points: usize,
    /// `curv` and `surf` lines.
    free_form: usize,
    /// `o` and `g` lines.
    groups: usize,
    /// `v` lines, and those of them with a colour (x y z r g b).
    vertices: usize,
    coloured: usize,
    /// Faces of one or two vertices.
    short_faces: usize,
    /// Lines whose first word is no OBJ statement, and the first of them: its number and
    /// that word.
    unknown: usize,
    first_unknown: Option<(usize, &'t str)>,
}

/// The statements of the OBJ specification (Wavefront's Appendix B1, with its superseded
/// ones) that a line may start with. tobj reads `v`, `vt`, `vn`, `f`, `l`, `o`, `g`,
/// `usemtl` and `mtllib` and skips any other line; the rest of these describe what a triangle
/// mesh has no use for (free-form curves and surfaces, display attributes), but a line
/// starting with anything else is most likely a damaged or misspelt one (`F 1 2 3`) whose
/// face would be lost without a word.
const STATEMENTS: [&str; 8] = [
    // Vertex data; free-form curve and surface attributes.
    "v vt vn vp",
    "cstype deg bmat step",
    // Elements; free-form curve and surface bodies; connectivity and grouping.
    "p l f curv curv2 surf",
    "parm trim hole scrv sp end",
    "con g s mg o",
    // Display and render attributes; general statements; superseded statements.
    "bevel c_interp d_interp lod maplib usemap usemtl mtllib shadow_obj trace_obj ctech stech",
    "call csh",
    "bsp bzp cdc cdp res",
];

fn is_statement(word: &str) -> bool {
    STATEMENTS
        .iter()
        .any(|group| group.split(' ').any(|s| s == word))
}

struct Problem<'t> {
    line: usize,
    text: &'t str,
    kind: LoadErrorKind,
    message: String,
}

fn syntax(message: impl Into<String>) -> (LoadErrorKind, String) {
    (LoadErrorKind::Syntax, message.into())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The verb for `n` lines: "1 comes", "2 come".
fn comes(n: usize) -> &'static str {
    if n == 1 {
        "comes"
    } else {
        "come"
    }
}

/// A `v` line with a coordinate that is no finite f32: the line and the coordinate as written.
struct BadVertex<'t> {
    line: usize,
    value: &'t str,
}

/// Checks the file as tobj reads it. The `v` lines go first, so that a face can be checked
/// against every vertex of the file (faces may refer forward); then every other line in order.
/// The first problem in the file is the one reported. Unless `full`, only what tobj does not
/// check itself: texture-coordinate and normal indices, relative vertex indices, index 0.
fn scan(text: &str, full: bool) -> Scan<'_> {
    let mut positions = if full { 0 } else { usize::MAX };
    let mut bad_vertices: HashMap<usize, BadVertex> = HashMap::new();
    let mut first: Option<Problem> = None;
    for (n, line) in text.lines().enumerate().filter(|_| full) {
        let mut words = line.split_whitespace();
        if words.next() != Some("v") {
            continue;
        }
        match check_position(words) {
            Ok(None) => {}
            Ok(Some(value)) => {
                bad_vertices.insert(positions, BadVertex { line: n + 1, value });
            }
            Err((kind, message)) if first.is_none() => {
                first = Some(Problem {
                    line: n + 1,
                    text: line,
                    kind,
                    message,
                })
            }
            Err(_) => {}
        }
        positions += 1;
    }

    let mut scan = Scan {
        problem: None,
        polylines: 0,
        points: 0,
        free_form: 0,
        groups: 0,
        vertices: 0,
        coloured: 0,
        short_faces: 0,
        unknown: 0,
        first_unknown: None,
    };
    let (mut before, mut texcoords, mut normals) = (0usize, 0usize, 0usize);
    // tobj ignores the faces of one or two vertices it is told to ignore, indices and all.
    let mut largest = 0usize;
    for (n, line) in text.lines().enumerate() {
        if first.as_ref().is_some_and(|p| p.line <= n + 1) {
            break;
        }
        let mut words = line.split_whitespace();
        let checked = match words.next() {
            Some("v") => {
                before += 1;
                scan.vertices += 1;
                if words.nth(5).is_some() {
                    scan.coloured += 1;
                }
                Ok(())
            }
            Some("vt") => {
                texcoords += 1;
                check_numbers(words, 2, "`vt` line", "u v", full)
            }
            Some("vn") => {
                normals += 1;
                check_numbers(words, 3, "`vn` line", "x y z", full)
            }
            Some("l") => {
                scan.polylines += 1;
                Ok(())
            }
            Some("p") => {
                scan.points += 1;
                Ok(())
            }
            Some("curv" | "surf") => {
                scan.free_form += 1;
                Ok(())
            }
            Some("o" | "g") => {
                scan.groups += 1;
                Ok(())
            }
            Some("usemtl")
                if line
                    .split_once(' ')
                    .is_none_or(|(_, m)| m.trim().is_empty()) =>
            {
                Err(syntax("`usemtl` without a material name"))
            }
            Some("f") => {
                let corners: Vec<&str> = words.collect();
                if (1..3).contains(&corners.len()) {
                    scan.short_faces += 1;
                }
                let counts = Counts {
                    positions,
                    before,
                    texcoords,
                    normals,
                };
                check_face(&corners, &counts, &bad_vertices, &mut largest)
            }
            // DOS-era writers end a file with ^Z, others pad it with NULs: no statement lost.
            Some(word) if word.bytes().all(|b| b == 0x1a || b == 0) => Ok(()),
            Some(word) if !word.starts_with('#') && !is_statement(word) => {
                scan.unknown += 1;
                scan.first_unknown.get_or_insert((n + 1, word));
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err((kind, message)) = checked {
            first = Some(Problem {
                line: n + 1,
                text: line,
                kind,
                message,
            });
            break;
        }
    }
    if first.is_none() && largest > before {
        // The light scan cannot know the line before the end; the full one will find it.
        first = Some(Problem {
            line: 0,
            text: "",
            kind: LoadErrorKind::IndexOutOfRange,
            message: String::new(),
        });
    }
    scan.problem = first;
    scan
}

/// Checks the words after `v` as tobj reads them: x y z, then nothing, a weight w, or a colour
/// r g b. `Ok(Some(value))` when the position is no finite f32, quoting the value.
fn check_position<'t>(
    words: std::str::SplitWhitespace<'t>,
) -> Result<Option<&'t str>, (LoadErrorKind, String)> {
    let words: Vec<&str> = words.collect();
    if words.len() < 3 {
        return Err(syntax(format!(
            "a `v` line needs three numbers x y z; this one has {}",
            words.len()
        )));
    }
    let mut xyz = [0.0f32; 3];
    for (c, word) in xyz.iter_mut().zip(&words) {
        *c = word
            .parse()
            .map_err(|_| syntax(format!("`{}` is not a number", quote(word))))?;
    }
    match words.len() {
        3 | 6 => {}
        4 => {
            let w: f32 = words[3]
                .parse()
                .map_err(|_| syntax(format!("the weight `{}` is not a number", quote(words[3]))))?;
            if w == 0.0 {
                return Err(syntax("the weight w is 0, which divides x y z"));
            }
            for c in &mut xyz {
                *c /= w;
            }
        }
        n => {
            return Err(syntax(format!(
                "a `v` line holds x y z, then a weight w or a colour r g b; this one has {n} \
                 numbers"
            )))
        }
    }
    Ok(xyz
        .iter()
        .position(|c| !c.is_finite())
        .map(|axis| match words[axis].parse::<f32>() {
            // Finite as written, not after dividing by w: the weight is what to look at.
            Ok(v) if v.is_finite() => words[3],
            _ => words[axis],
        }))
}

/// Checks that the words after `vt` or `vn` start with `count` numbers (if `full`).
fn check_numbers(
    words: std::str::SplitWhitespace,
    count: usize,
    what: &str,
    names: &str,
    full: bool,
) -> Result<(), (LoadErrorKind, String)> {
    if !full {
        return Ok(());
    }
    let words: Vec<&str> = words.take(count).collect();
    if words.len() < count {
        return Err(syntax(format!(
            "a {what} needs {count} numbers {names}; this one has {}",
            words.len()
        )));
    }
    match words.iter().find(|w| w.parse::<f32>().is_err()) {
        Some(bad) => Err(syntax(format!("`{}` is not a number", quote(bad)))),
        None => Ok(()),
    }
}

/// How many of each kind of line the file has, or has before the line being checked.
struct Counts {
    /// `v` lines in the whole file: faces may refer forward.
    positions: usize,
    /// `v` lines before this one: relative (negative) indices count back from here.
    before: usize,
    texcoords: usize,
    normals: usize,
}

/// Checks one face's corners (`v`, `v/vt`, `v//vn` or `v/vt/vn`). Texture-coordinate and
/// normal indices are checked too, although the renderer uses neither: a wrong one means the
/// file is not what its writer meant, and tobj ignores such an index when the file has no `vt`
/// or `vn` lines and overflows on a 0 or an out-of-range negative one. Unlike positions, they
/// must refer to lines before the face.
fn check_face(
    corners: &[&str],
    counts: &Counts,
    bad_vertices: &HashMap<usize, BadVertex>,
    largest: &mut usize,
) -> Result<(), (LoadErrorKind, String)> {
    if corners.is_empty() {
        return Err(syntax("a face without vertices"));
    }
    let out_of_range = |message: String| (LoadErrorKind::IndexOutOfRange, message);
    for corner in corners {
        let parts: Vec<&str> = corner.split('/').collect();
        if parts.len() > 3 {
            return Err(syntax(format!(
                "the face corner `{}` has more than three parts (v/vt/vn)",
                quote(corner)
            )));
        }
        let mut indices = [None; 3];
        let names = ["vertex", "texture coordinate", "normal"];
        for ((slot, part), name) in indices.iter_mut().zip(&parts).zip(names) {
            if part.is_empty() {
                continue;
            }
            *slot = Some(part.parse::<isize>().map_err(|e| {
                let what = if matches!(
                    e.kind(),
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
                ) {
                    "is too large for an index"
                } else {
                    "is not an integer"
                };
                let corner = if parts.len() > 1 {
                    format!(" in the face corner `{}`", quote(corner))
                } else {
                    String::new()
                };
                syntax(format!("{name} index `{}`{corner} {what}", quote(part)))
            })?);
        }
        let Some(v) = indices[0] else {
            return Err(out_of_range(format!(
                "the face corner `{}` has no vertex index",
                quote(corner)
            )));
        };
        let vertex = match v {
            0 => {
                return Err(out_of_range(
                    "vertex index 0 is invalid: OBJ indices start at 1".into(),
                ))
            }
            v if v > 0 && v.unsigned_abs() > counts.positions => {
                return Err(out_of_range(format!(
                    "a face refers to vertex {v}, but the file has only {} `v` line{}",
                    counts.positions,
                    plural(counts.positions)
                )))
            }
            v if v < 0 && v.unsigned_abs() > counts.before => {
                return Err(out_of_range(format!(
                    "relative vertex index {v} reaches before the first `v` line ({} {} \
                     before it)",
                    counts.before,
                    comes(counts.before)
                )))
            }
            v if v > 0 => {
                *largest = (*largest).max(v.unsigned_abs());
                v.unsigned_abs() - 1
            }
            v => counts.before - v.unsigned_abs(),
        };
        if corners.len() >= 3 {
            if let Some(bad) = bad_vertices.get(&vertex) {
                return Err((
                    LoadErrorKind::NonFinite,
                    format!(
                        "a face uses vertex {} (line {}), whose coordinate `{}` is not a finite \
                         f32",
                        vertex + 1,
                        bad.line,
                        quote(bad.value)
                    ),
                ));
            }
        }
        let attributes = [
            (indices[1], counts.texcoords, "texture coordinate", "vt"),
            (indices[2], counts.normals, "normal", "vn"),
        ];
        for (index, count, what, keyword) in attributes {
            let Some(index) = index else { continue };
            let message = if index == 0 {
                format!("{what} index 0 is invalid: OBJ indices start at 1")
            } else if index > 0 && index.unsigned_abs() > count {
                format!(
                    "a face refers to {what} {index}, but only {count} `{keyword}` line{} {} \
                     before it",
                    plural(count),
                    comes(count)
                )
            } else if index < 0 && index.unsigned_abs() > count {
                format!(
                    "relative {what} index {index} reaches before the first `{keyword}` line \
                     ({count} {} before it)",
                    comes(count)
                )
            } else {
                continue;
            };
            return Err(out_of_range(message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::QUOTED_CHARS;
    use super::*;

    fn parse(text: &str) -> Result<(Mesh, Vec<String>), LoadError> {
        parse_obj(Path::new("t.obj"), text.as_bytes())
    }

    fn area(mesh: &Mesh) -> f32 {
        (0..mesh.triangle_count())
            .map(|i| {
                let [a, b, c] = mesh.triangle(i);
                (b - a).cross(c - a).length() / 2.0
            })
            .sum()
    }

    #[test]
    fn a_concave_polygon_covers_its_own_area() {
        // An L whose first vertex is the inner corner: tobj's fan covered 0.68 instead of 0.28.
        let l = "v 0.6 0.2 0\nv 0.2 0.2 0\nv 0.2 1 0\nv 0 1 0\nv 0 0 0\nv 0.6 0 0\n";
        let (mesh, warnings) = parse(&format!("{l}f 1 2 3 4 5 6\n")).unwrap();
        assert_eq!(mesh.triangle_count(), 4);
        assert!((area(&mesh) - 0.28).abs() < 1e-6, "{}", area(&mesh));
        assert!(warnings.is_empty(), "{warnings:?}");
        // Beside triangles and quads, with texture coordinates, in a second group.
        let text =
            format!("{l}vt 0 0\nf 1 2 3\ng second\nf 1/1 2/1 3/1 4/1 5/1 6/1\nf -6 -5 -4 -3\n");
        let (mesh, _) = parse(&text).unwrap();
        assert_eq!(mesh.triangle_count(), 1 + 4 + 2);
    }

    #[test]
    fn colours_on_some_vertices_only_are_ignored_like_the_others() {
        let (mesh, warnings) = parse("v 0 0 0 1 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n").unwrap();
        assert_eq!(mesh.triangle_count(), 1);
        assert!(warnings.is_empty(), "{warnings:?}");
        let (mesh, _) = parse("v 0 0 0\nv 2 0 0 2\nv 0 1 0 0.5 0.5 0.5\nf 1 2 3\n").unwrap();
        assert_eq!(
            mesh.triangle(0)[1],
            Vec3::new(1.0, 0.0, 0.0),
            "the weight divides"
        );
        // Colours on every vertex were always read (and ignored).
        let (mesh, _) = parse("v 0 0 0 1 0 0\nv 1 0 0 1 0 0\nv 0 1 0 1 0 0\nf 1 2 3\n").unwrap();
        assert_eq!(mesh.triangle_count(), 1);
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
    fn faces_may_refer_forward_and_errors_name_the_right_line() {
        let (m, _) = parse("f 1 2 3\nv 0 0 0\nv 1 0 0\nv 0 1 0\n").unwrap();
        assert_eq!(m.triangle_count(), 1);
        let e = parse("f 1 2 3\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::IndexOutOfRange);
        assert_eq!(e.location.line, Some(5), "{e}");
        assert_eq!(
            e.message,
            "a face refers to vertex 9, but the file has only 3 `v` lines (`f 1 2 9`)"
        );
        // Across objects too (tobj checks a face when its object ends): all is one mesh.
        let text = "o a\nf 1 2 3\no b\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n";
        let (m, _) = parse(text).unwrap();
        assert_eq!(m.triangle_count(), 2);
        let e = parse(&format!("{text}v 1 x 0\n")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax);
        assert_eq!(e.location.line, Some(8), "{e}");
        assert_eq!(e.message, "`x` is not a number (`v 1 x 0`)");
        // Relative indices count back from the face, not from the end of the file.
        let e = parse("v 0 0 0\nv 1 0 0\nf -1 -2 -3\nv 0 1 0\n").unwrap_err();
        assert_eq!(e.location.line, Some(3), "{e}");
        assert!(e.message.starts_with("relative vertex index -3"), "{e}");
    }

    /// An error on the last line of a 90k-face file is found and placed. (Its cost, about
    /// one more pass over the file instead of a bisection's twenty, was measured by hand: a
    /// 75 MB file's error took 3.7 s instead of 55, a good load 4.3 s; timings are not
    /// asserted in tests on a shared machine.)
    #[test]
    fn an_error_on_the_last_line_of_a_large_file_is_placed() {
        let n = 300;
        let mut text = String::new();
        for y in 0..=n {
            for x in 0..=n {
                text.push_str(&format!("v {x} {y} 0\n"));
            }
        }
        for y in 0..n {
            for x in 0..n {
                let i = y * (n + 1) + x + 1;
                text.push_str(&format!("f {i} {} {}\n", i + 1, i + n + 2));
            }
        }
        assert!(parse(&text).is_ok());
        text.push_str("f 1 2 999999\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.location.line, Some(text.lines().count()), "{e}");
    }

    #[test]
    fn coordinates_too_large_for_f32_are_quoted_as_written() {
        let e = parse("v 0 0 0\nv 1 0 0\nv 1e39 1 0\nf 1 2 3\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NonFinite);
        assert_eq!(e.location.line, Some(4), "{e}");
        assert_eq!(
            e.message,
            "a face uses vertex 3 (line 3), whose coordinate `1e39` is not a finite f32 \
             (`f 1 2 3`)"
        );
        // Unused, it does no harm.
        let (m, _) = parse("v 0 0 0\nv 1 0 0\nv 1e39 1 0\nv 0 1 0\nf 1 2 4\n").unwrap();
        assert_eq!(m.triangle_count(), 1);
    }

    #[test]
    fn short_faces_and_index_zero_are_named() {
        let e = parse("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NoTriangles);
        assert_eq!(
            e.to_string(),
            "t.obj: the file holds no faces (ignored 1 face with fewer than 3 vertices)"
        );
        let (m, w) = parse("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\nf 1\nf 1 2 3\n").unwrap();
        assert_eq!(m.triangle_count(), 1);
        assert_eq!(w, ["t.obj: ignored 2 faces with fewer than 3 vertices"]);
        let e = parse("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::IndexOutOfRange);
        assert_eq!(
            e.message,
            "vertex index 0 is invalid: OBJ indices start at 1 (`f 0 1 2`)"
        );
        // A short face's indices are checked all the same.
        let e = parse("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 7\n").unwrap_err();
        assert_eq!(e.location.line, Some(5), "{e}");
    }

    /// Each of these lines used to be skipped without a word, its face lost.
    #[test]
    fn lines_that_start_with_no_obj_statement_are_counted_in_one_warning() {
        let tri = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\n";
        let (m, w) = parse(&format!("{tri}F 2 4 3\nf2 4 3\n\u{12}f 2 4 3\nf 2 4 3\n")).unwrap();
        assert_eq!(m.triangle_count(), 2);
        assert_eq!(
            w,
            ["t.obj: ignored 3 lines that start with no OBJ statement (the first: line 6, `F`)"]
        );
        let (_, w) = parse(&format!("{tri}  fv 1 2 3\n")).unwrap();
        assert_eq!(
            w,
            ["t.obj: ignored 1 line that starts with no OBJ statement (the first: line 6, `fv`)"]
        );
        // Statements of the specification that a mesh does without, comments and blank lines
        // are no cause for a warning.
        let known = "# c\n#c\n\n   \nvp 0.5\ns 1\ns off\nmtllib a.mtl\nusemtl m\ncstype bspline\n\
                     deg 3\nparm u 0 1\nend\nmg 1\nlod 2\nshadow_obj s.obj\n\
                     trace_obj t.obj\nbevel off\nc_interp on\nd_interp off\ncall x.obj\n\
                     res 4 4\n";
        let (m, w) = parse(&format!("{tri}{known}")).unwrap();
        assert_eq!(m.triangle_count(), 1);
        assert!(w.is_empty(), "{w:?}");
        // Nor is an end-of-file mark (^Z) or NUL padding.
        for end in ["\u{1a}", "\u{1a}\n", "\0\0\0", "\0 \0\n\0"] {
            let (m, w) = parse(&format!("{tri}{end}")).unwrap();
            assert_eq!(m.triangle_count(), 1);
            assert!(w.is_empty(), "{end:?}: {w:?}");
        }
    }

    /// A megabyte token used to give a megabyte error line, quoted twice.
    #[test]
    fn long_tokens_and_lines_are_quoted_in_part() {
        let long = "7".repeat(1 << 20);
        let tri = "v 0 0 0\nv 1 0 0\nv 0 1 0\n";
        let e = parse(&format!("{tri}f 1 2 x{long}\n")).unwrap_err();
        let cut = format!("x{}…", &long[..QUOTED_CHARS - 1]);
        assert_eq!(
            e.message,
            format!(
                "vertex index `{cut}` is not an integer (`f 1 2 x{}…`)",
                &long[..73]
            )
        );
        let e = parse(&format!("{tri}v 1 {long}x 0\nf 1 2 3\n")).unwrap_err();
        assert!(e
            .message
            .starts_with(&format!("`{}…` is not a number (`v 1 ", &long[..80])));
        assert!(e.message.len() < 300, "{}", e.message.len());
        let e = parse(&format!("v 0 0 0\nv 1 0 0\nv 0 1{long} 0\nf 1 2 3\n")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NonFinite);
        assert!(e.message.len() < 300, "{}", e.message.len());
        let (_, w) = parse(&format!("{tri}f 1 2 3\n{long}\n")).unwrap();
        assert!(
            w[0].ends_with(&format!("line 5, `{}…`)", &long[..80])),
            "{w:?}"
        );
    }

    /// Points and free-form geometry used to be dropped without a word, while polylines and
    /// unknown statements were reported.
    #[test]
    fn points_curves_and_surfaces_are_reported_like_polylines() {
        let tri = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n";
        let free_form = "cstype bezier\ndeg 1\ncurv 0 1 1 2\nparm u 0 1\nend\n\
                         surf 0 1 0 1 1 2 3 1\nparm u 0 1\nparm v 0 1\nend\n";
        let (m, w) = parse(&format!("{tri}p 1\np 2 3\n{free_form}l 1 2\n")).unwrap();
        assert_eq!(m.triangle_count(), 1);
        assert_eq!(
            w,
            [
                "t.obj: ignored 1 polyline (`l`) statement",
                "t.obj: ignored 2 point (`p`) statements",
                "t.obj: ignored 2 free-form curve or surface (`curv`, `surf`) statements",
            ]
        );
        // Without a face, the error says what there was instead.
        let e = parse("v 0 0 0\np 1\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NoTriangles);
        assert_eq!(
            e.message,
            "the file holds no faces (ignored 1 point (`p`) statement)"
        );
    }

    #[test]
    fn counts_of_one_line_take_a_singular_verb() {
        let tri = "v 0 0 0\nv 1 0 0\nv 0 1 0\n";
        let e = parse(&format!("{tri}vn 0 0 1\nf 1//1 2//2 3//1\n")).unwrap_err();
        assert_eq!(
            e.message,
            "a face refers to normal 2, but only 1 `vn` line comes before it (`f 1//1 2//2 3//1`)"
        );
        let e = parse(&format!("{tri}vt 0 0\nvt 1 0\nf 1/3 2/1 3/1\n")).unwrap_err();
        assert_eq!(
            e.message,
            "a face refers to texture coordinate 3, but only 2 `vt` lines come before it \
             (`f 1/3 2/1 3/1`)"
        );
        let e = parse(&format!("{tri}vt 0 0\nf 1/-2 2/1 3/1\n")).unwrap_err();
        assert_eq!(
            e.message,
            "relative texture coordinate index -2 reaches before the first `vt` line (1 comes \
             before it) (`f 1/-2 2/1 3/1`)"
        );
        let e = parse("v 0 0 0\nf -2 -1 -1\nv 1 0 0\nv 0 1 0\n").unwrap_err();
        assert_eq!(
            e.message,
            "relative vertex index -2 reaches before the first `v` line (1 comes before it) \
             (`f -2 -1 -1`)"
        );
    }

    /// A Latin-1 comment or object name (`café`, written by an editor in Windows-1252) used
    /// to refuse the whole file.
    #[test]
    fn bytes_that_are_not_utf8_are_refused_only_where_prism_reads() {
        let tri = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n";
        for named in [
            &b"# caf\xe9\n"[..],
            b"o caf\xe9\n",
            b"g caf\xe9 bar\n",
            b"usemtl caf\xe9\n",
            b"mtllib caf\xe9.mtl\n",
            b"s 1 # caf\xe9\n",
            b"#\xa9 2003 ACME\n",
            b"\xef\xbb\xbf# caf\xe9\n",
            b"\xef\xbb\xbfo caf\xe9\n",
        ] {
            let bytes = [named, tri].concat();
            let (m, w) = parse_obj(Path::new("t.obj"), &bytes).unwrap();
            assert_eq!(m.triangle_count(), 1, "{}", String::from_utf8_lossy(named));
            assert!(w.is_empty(), "{w:?}");
        }
        let bytes = [&tri[..], b"v 0 0 1\xe9\nf 1 2 4\n"].concat();
        let e = parse_obj(Path::new("t.obj"), &bytes).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax);
        assert_eq!(
            e.to_string(),
            "t.obj: line 5, byte offset 39: the `v` line is not UTF-8 text (`v 0 0 1\u{fffd}`)"
        );
        let bytes = [&b"# caf\xe9\n"[..], tri, b"f 1 2 3\xff\n"].concat();
        let e = parse_obj(Path::new("t.obj"), &bytes).unwrap_err();
        assert_eq!(e.location, Location::line(6).with_byte_offset(46));
        assert!(
            e.message.starts_with("the `f` line is not UTF-8 text"),
            "{e}"
        );
        // A line that starts with no statement is no comment or name either.
        let bytes = [&tri[..], b"\xe9 1 2 3\n"].concat();
        let e = parse_obj(Path::new("t.obj"), &bytes).unwrap_err();
        assert_eq!(e.location, Location::line(5).with_byte_offset(32));
        assert_eq!(e.message, "the line is not UTF-8 text (`\u{fffd} 1 2 3`)");
    }

    #[test]
    fn old_mac_line_ends_are_line_ends() {
        let (m, _) = parse("v 0 0 0\rv 1 0 0\rv 0 1 0\rf 1 2 3\r").unwrap();
        assert_eq!(m.triangle_count(), 1);
        let e = parse("v 0 0 0\rv 1 0 0\rv 0 1 0\rf 1 2 4\r").unwrap_err();
        assert_eq!(e.location.line, Some(4), "{e}");
    }

    #[test]
    fn no_faces_is_an_error() {
        let e = parse("v 0 0 0\nv 1 0 0\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NoTriangles);
        let e = parse("  \n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Empty);
    }
}
