//! PLY (ASCII, binary little endian and binary big endian) through `ply-rs-bw`.
//!
//! The header is parsed by the crate and then checked here: a `vertex` element with scalar
//! `x`, `y`, `z` and a `face` element with an integer list `vertex_indices` (or
//! `vertex_index`). The payload is read one element at a time with the crate's element
//! readers, so that an error can name the line (ASCII) or byte offset (binary) and the element
//! index. Other elements (edges, materials, ...) are parsed and ignored.

use super::{
    check_not_empty, fan, finish_mesh, guard, line_of_offset, read_file, skip_bom, LoadError,
    LoadErrorKind, Location,
};
use crate::math::Vec3;
use crate::mesh::Mesh;
use ply_rs_bw::parser::{Parser, Reader};
use ply_rs_bw::ply::{
    ElementDef, Encoding, Header, PropertyAccess, PropertyAccessResult, PropertyType, ScalarType,
};
use std::io::{Cursor, ErrorKind};
use std::path::Path;

/// Reads a PLY file; warnings are printed to stderr (see [`load_ply_with_report`]).
pub fn load_ply(path: &Path) -> Result<Mesh, LoadError> {
    let (mesh, warnings) = load_ply_with_report(path)?;
    super::print_warnings(&warnings);
    Ok(mesh)
}

/// Reads a PLY file (any of the three encodings); faces with more than three vertices are
/// split into fans, properties other than positions and vertex indices are ignored.
pub fn load_ply_with_report(path: &Path) -> Result<(Mesh, Vec<String>), LoadError> {
    let bytes = read_file(path)?;
    parse_ply(path, &bytes)
}

/// Parses PLY contents already in memory; `path` is used only in messages.
pub fn parse_ply(path: &Path, bytes: &[u8]) -> Result<(Mesh, Vec<String>), LoadError> {
    check_not_empty(path, bytes)?;
    guard(path, || read(path, bytes))
}

const FACE_LISTS: [&str; 2] = ["vertex_indices", "vertex_index"];

/// One vertex: the three coordinates, whatever their stored type.
#[derive(Default)]
struct VertexRec {
    p: [f64; 3],
}

impl VertexRec {
    fn coord(&mut self, name: &str, v: f64) -> PropertyAccessResult {
        let axis = match name {
            "x" => 0,
            "y" => 1,
            "z" => 2,
            _ => return PropertyAccessResult::Ignored,
        };
        self.p[axis] = v;
        PropertyAccessResult::Set
    }
}

impl PropertyAccess for VertexRec {
    fn new() -> Self {
        VertexRec::default()
    }
    fn set_char(&mut self, n: &str, v: i8) -> PropertyAccessResult {
        self.coord(n, v.into())
    }
    fn set_uchar(&mut self, n: &str, v: u8) -> PropertyAccessResult {
        self.coord(n, v.into())
    }
    fn set_short(&mut self, n: &str, v: i16) -> PropertyAccessResult {
        self.coord(n, v.into())
    }
    fn set_ushort(&mut self, n: &str, v: u16) -> PropertyAccessResult {
        self.coord(n, v.into())
    }
    fn set_int(&mut self, n: &str, v: i32) -> PropertyAccessResult {
        self.coord(n, v.into())
    }
    fn set_uint(&mut self, n: &str, v: u32) -> PropertyAccessResult {
        self.coord(n, v.into())
    }
    fn set_float(&mut self, n: &str, v: f32) -> PropertyAccessResult {
        self.coord(n, v.into())
    }
    fn set_double(&mut self, n: &str, v: f64) -> PropertyAccessResult {
        self.coord(n, v)
    }
}

/// One face: its vertex indices, widened so that negative values can be reported.
#[derive(Default)]
struct FaceRec {
    indices: Vec<i64>,
}

impl FaceRec {
    fn list(&mut self, name: &str, v: impl Iterator<Item = i64>) -> PropertyAccessResult {
        if FACE_LISTS.contains(&name) {
            self.indices.clear();
            self.indices.extend(v);
            PropertyAccessResult::Set
        } else {
            PropertyAccessResult::Ignored
        }
    }
}

impl PropertyAccess for FaceRec {
    fn new() -> Self {
        FaceRec::default()
    }
    fn set_list_char(&mut self, n: &str, v: Vec<i8>) -> PropertyAccessResult {
        self.list(n, v.into_iter().map(i64::from))
    }
    fn set_list_uchar(&mut self, n: &str, v: Vec<u8>) -> PropertyAccessResult {
        self.list(n, v.into_iter().map(i64::from))
    }
    fn set_list_short(&mut self, n: &str, v: Vec<i16>) -> PropertyAccessResult {
        self.list(n, v.into_iter().map(i64::from))
    }
    fn set_list_ushort(&mut self, n: &str, v: Vec<u16>) -> PropertyAccessResult {
        self.list(n, v.into_iter().map(i64::from))
    }
    fn set_list_int(&mut self, n: &str, v: Vec<i32>) -> PropertyAccessResult {
        self.list(n, v.into_iter().map(i64::from))
    }
    fn set_list_uint(&mut self, n: &str, v: Vec<u32>) -> PropertyAccessResult {
        self.list(n, v.into_iter().map(i64::from))
    }
}

/// Elements this reader does not use; parsed (to stay in step with the file) and dropped.
struct Skip;

impl PropertyAccess for Skip {
    fn new() -> Self {
        Skip
    }
}

/// Where the payload reader stands: a cursor over the whole file plus, for ASCII, the
/// number of the line the cursor is on.
struct Payload<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    cursor: Cursor<&'a [u8]>,
    encoding: Encoding,
}

impl<'a> Payload<'a> {
    /// Reads element `index` of `def` into an `E`; errors carry the line or byte offset.
    fn next<E: PropertyAccess>(&mut self, def: &ElementDef, index: usize) -> Result<E, LoadError> {
        let parser = Parser::<E>::new();
        let start = self.cursor.position() as usize;
        let here = Location::element(&def.name, index);
        match self.encoding {
            Encoding::Ascii => {
                let (line_no, line) = self.next_text_line(def, index)?;
                let element = parser.read_ascii_element(line, def).map_err(|e| {
                    LoadError::new(
                        self.path,
                        LoadErrorKind::Syntax,
                        here.clone().with_line(line_no),
                        format!("cannot read {} {index}: {e}", def.name),
                    )
                })?;
                // The crate stops reading a line once the declared properties are filled, so
                // a list longer than its count, or a value nobody declared, would otherwise
                // pass unseen: the line is not what the header says it is.
                let values: Vec<&str> = line.split_whitespace().collect();
                let declared = declared_values(&values, def);
                if values.len() > declared {
                    let extra = values[declared..].join(" ");
                    let shown: String = extra.chars().take(40).collect();
                    return Err(LoadError::new(
                        self.path,
                        LoadErrorKind::Syntax,
                        here.with_line(line_no),
                        format!(
                            "{} {index} has {} values, but the properties the header declares \
                             for `{}` take {declared}{}; extra: `{shown}`",
                            def.name,
                            values.len(),
                            def.name,
                            if has_list(def) {
                                " (with the lengths its list counts give)"
                            } else {
                                ""
                            },
                        ),
                    ));
                }
                Ok(element)
            }
            Encoding::BinaryLittleEndian | Encoding::BinaryBigEndian => {
                let result = if self.encoding == Encoding::BinaryLittleEndian {
                    parser.read_little_endian_element(&mut self.cursor, def)
                } else {
                    parser.read_big_endian_element(&mut self.cursor, def)
                };
                result.map_err(|e| {
                    let (kind, message) = if e.kind() == ErrorKind::UnexpectedEof {
                        (
                            LoadErrorKind::Truncated,
                            format!(
                                "the file ends inside {} {index} (the header announces {})",
                                def.name, def.count
                            ),
                        )
                    } else {
                        (
                            LoadErrorKind::Syntax,
                            format!("cannot read {} {index}: {e}", def.name),
                        )
                    };
                    LoadError::new(
                        self.path,
                        kind,
                        here.with_byte_offset(start as u64),
                        message,
                    )
                })
            }
        }
    }

    /// The next non-blank line of an ASCII payload and its 1-based number.
    fn next_text_line(
        &mut self,
        def: &ElementDef,
        index: usize,
    ) -> Result<(usize, &'a str), LoadError> {
        let bytes = self.bytes;
        loop {
            let start = self.cursor.position() as usize;
            if start >= bytes.len() {
                return Err(LoadError::new(
                    self.path,
                    LoadErrorKind::Truncated,
                    Location::element(&def.name, index).with_line(line_of_offset(bytes, start)),
                    format!(
                        "the file ends before {} {index} (the header announces {})",
                        def.name, def.count
                    ),
                ));
            }
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| start + p + 1);
            self.cursor.set_position(end as u64);
            let line_no = line_of_offset(bytes, start);
            let line = std::str::from_utf8(&bytes[start..end]).map_err(|_| {
                LoadError::new(
                    self.path,
                    LoadErrorKind::Syntax,
                    Location::element(&def.name, index).with_line(line_no),
                    "the line is not text",
                )
            })?;
            if !line.trim().is_empty() {
                return Ok((line_no, line.trim_end()));
            }
        }
    }
}

/// How many of an ASCII line's `values` the element's declared properties take: one per
/// scalar, one plus its count per list.
fn declared_values(values: &[&str], def: &ElementDef) -> usize {
    let mut taken = 0usize;
    for prop in def.properties.values() {
        taken = taken.saturating_add(1);
        if let PropertyType::List(..) = prop.data_type {
            let count = values
                .get(taken - 1)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            taken = taken.saturating_add(count);
        }
    }
    taken
}

fn has_list(def: &ElementDef) -> bool {
    def.properties
        .values()
        .any(|p| matches!(p.data_type, PropertyType::List(..)))
}

fn read(path: &Path, bytes: &[u8]) -> Result<(Mesh, Vec<String>), LoadError> {
    // Start past a byte-order mark, on a cursor over the whole file, so that byte offsets in
    // errors stay the file's own.
    let mut cursor = Cursor::new(bytes);
    cursor.set_position((bytes.len() - skip_bom(bytes).len()) as u64);
    let mut reader = Reader::new(cursor);
    let header = Parser::<Skip>::new()
        .read_header(&mut reader)
        .map_err(|e| {
            let line = e.line().unwrap_or_else(|| reader.line().max(1));
            LoadError::new(
                path,
                LoadErrorKind::Header,
                Location::line(line),
                format!("not a valid PLY header: {}", header_message(&e)),
            )
        })?;
    check_declarations(path, skip_bom(bytes))?;
    let (vertex_def, face_def, face_list) = check_header(path, &header)?;
    let vertex_count = vertex_def.count;
    if vertex_count > u32::MAX as usize {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Syntax,
            Location::default(),
            format!("{vertex_count} vertices; at most 2^32 - 1 are supported"),
        ));
    }

    let cursor = reader.into_inner();
    let mut payload = Payload {
        path,
        bytes,
        cursor,
        encoding: header.encoding,
    };
    let mut positions = Vec::new();
    let mut indices = Vec::new();
    let mut short_faces = 0usize;
    let mut polygon = Vec::new();
    for def in header.elements.values() {
        if def.name == vertex_def.name {
            positions.reserve(def.count.min(1 << 20));
            for i in 0..def.count {
                let at = payload.cursor.position();
                let v: VertexRec = payload.next(def, i)?;
                let p = Vec3::new(v.p[0] as f32, v.p[1] as f32, v.p[2] as f32);
                if !p.is_finite() {
                    return Err(LoadError::new(
                        path,
                        LoadErrorKind::NonFinite,
                        located(&payload, at, def, i),
                        format!(
                            "vertex {i} has a coordinate that is not a finite f32 ({} {} {})",
                            v.p[0], v.p[1], v.p[2]
                        ),
                    ));
                }
                positions.push(p);
            }
        } else if def.name == face_def.name {
            indices.reserve(def.count.min(1 << 20));
            for i in 0..def.count {
                let at = payload.cursor.position();
                let f: FaceRec = payload.next(def, i)?;
                if let Some(&bad) = f
                    .indices
                    .iter()
                    .find(|&&v| v < 0 || v as u64 >= vertex_count as u64)
                {
                    return Err(LoadError::new(
                        path,
                        LoadErrorKind::IndexOutOfRange,
                        located(&payload, at, def, i),
                        format!(
                            "face {i} ({face_list}) refers to vertex {bad}, but the file has \
                             {vertex_count} vertices"
                        ),
                    ));
                }
                if f.indices.len() < 3 {
                    short_faces += 1;
                }
                polygon.clear();
                polygon.extend(f.indices.iter().map(|&v| v as u32));
                fan(&polygon, &mut indices);
            }
        } else {
            for i in 0..def.count {
                payload.next::<Skip>(def, i)?;
            }
        }
    }

    let mut warnings = Vec::new();
    if short_faces > 0 {
        warnings.push(format!(
            "{}: ignored {short_faces} face{} with fewer than 3 vertices",
            path.display(),
            if short_faces == 1 { "" } else { "s" }
        ));
    }
    let rest = &bytes[payload.cursor.position() as usize..];
    let trailing = match header.encoding {
        Encoding::Ascii => rest.iter().any(|b| !b.is_ascii_whitespace()),
        _ => !rest.is_empty(),
    };
    if trailing {
        warnings.push(format!(
            "{}: ignored {} bytes after the last element",
            path.display(),
            rest.len()
        ));
    }
    finish_mesh(path, positions, indices, warnings)
}

/// A header error as a user can act on it: ply-rs quotes the line and then dumps its
/// grammar's internals (`…; String: 'line; '; Error: ParseError { … }`).
fn header_message(e: &ply_rs_bw::parser::ParseError) -> String {
    // Its parts are on lines of their own, as `LoadError` prints them: `; ` between them.
    let text = without_line_prefix(e)
        .replace("\n\t", "; ")
        .replace('\n', "; ");
    let text = text.split("; Error: ").next().unwrap_or_default();
    match text.split_once("; String: '") {
        Some((_, quoted)) => {
            let line = quoted.trim_end_matches('\'').trim_end_matches("; ").trim();
            format!(
                "cannot read the line `{line}` (a header line starts with ply, format, \
                 comment, obj_info, element, property or end_header)"
            )
        }
        None => text.to_string(),
    }
}

/// The crate's message without its own `Line N: ` prefix (the location already says it).
fn without_line_prefix(e: &ply_rs_bw::parser::ParseError) -> String {
    let text = e.to_string();
    match e.line() {
        Some(n) => text
            .strip_prefix(&format!("Line {n}: "))
            .map(str::to_string)
            .unwrap_or(text),
        None => text,
    }
}

fn located(payload: &Payload, at: u64, def: &ElementDef, index: usize) -> Location {
    let here = Location::element(&def.name, index);
    match payload.encoding {
        // The cursor is past the line just read; its start is the start of the element.
        Encoding::Ascii => {
            let start = payload.bytes[at as usize..]
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .map_or(at as usize, |p| at as usize + p);
            here.with_line(line_of_offset(payload.bytes, start))
        }
        _ => here.with_byte_offset(at),
    }
}

/// Refuses an element, or a property of one element, declared twice. The crate keeps one
/// definition per name and attaches later properties to whichever element it holds last, so a
/// repeated declaration would surface as a misleading error far from its cause.
fn check_declarations(path: &Path, text: &[u8]) -> Result<(), LoadError> {
    let mut elements: Vec<(&str, usize)> = Vec::new();
    let mut properties: Vec<(&str, usize)> = Vec::new();
    let mut element = "";
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = n + 1;
        let words: Vec<&str> = std::str::from_utf8(line)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let (kind, name, seen) = match words.as_slice() {
            ["end_header", ..] => break,
            ["element", name, ..] => {
                element = name;
                properties.clear();
                ("element", *name, &mut elements)
            }
            ["property", .., name] if words.len() >= 3 => ("property", *name, &mut properties),
            _ => continue,
        };
        if let Some(&(_, first)) = seen.iter().find(|(seen, _)| *seen == name) {
            let what = if kind == "element" {
                format!("element `{name}`")
            } else {
                format!("property `{name}` of element `{element}`")
            };
            return Err(LoadError::new(
                path,
                LoadErrorKind::Header,
                Location::line(line_no),
                format!("{what} is declared twice (first on line {first})"),
            ));
        }
        seen.push((name, line_no));
    }
    Ok(())
}

/// Checks that the header declares what a triangle mesh needs, with usable types.
fn check_header<'h>(
    path: &Path,
    header: &'h Header,
) -> Result<(&'h ElementDef, &'h ElementDef, &'static str), LoadError> {
    let missing = |what: String| {
        LoadError::new(
            path,
            LoadErrorKind::MissingElement,
            Location::default(),
            what,
        )
    };
    let wrong =
        |what: String| LoadError::new(path, LoadErrorKind::WrongType, Location::default(), what);
    let vertex = header
        .elements
        .get("vertex")
        .ok_or_else(|| missing("the header declares no `vertex` element".into()))?;
    for axis in ["x", "y", "z"] {
        let prop = vertex.properties.get(axis).ok_or_else(|| {
            missing(format!(
                "element `vertex` has no property `{axis}` in the header"
            ))
        })?;
        if let PropertyType::List(..) = prop.data_type {
            return Err(wrong(format!(
                "property `vertex.{axis}` is a list; a coordinate must be a number"
            )));
        }
    }
    let face = header
        .elements
        .get("face")
        .ok_or_else(|| missing("the header declares no `face` element".into()))?;
    let (name, prop) = FACE_LISTS
        .iter()
        .find_map(|n| face.properties.get(*n).map(|p| (*n, p)))
        .ok_or_else(|| {
            missing("element `face` has no `vertex_indices` (or `vertex_index`) list".into())
        })?;
    match &prop.data_type {
        PropertyType::List(_, item) if is_integer(item) => {}
        PropertyType::List(_, item) => {
            return Err(wrong(format!(
                "property `face.{name}` holds {item:?} values; vertex indices must be integers"
            )))
        }
        PropertyType::Scalar(_) => {
            return Err(wrong(format!(
                "property `face.{name}` is a single number; it must be a list of vertex indices"
            )))
        }
    }
    Ok((vertex, face, name))
}

fn is_integer(t: &ScalarType) -> bool {
    !matches!(t, ScalarType::Float | ScalarType::Double)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<(Mesh, Vec<String>), LoadError> {
        parse_ply(Path::new("t.ply"), bytes)
    }

    const HEAD: &str = "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\n\
                        property float y\nproperty float z\nelement face 2\n\
                        property list uchar int vertex_indices\nend_header\n";

    #[test]
    fn a_bad_header_line_is_quoted_without_the_parsers_internals() {
        let e =
            parse(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nbogus line here\n")
                .unwrap_err();
        let said = e.to_string();
        assert!(
            said.contains(
                "line 5: not a valid PLY header: cannot read the line `bogus line here` \
                 (a header line starts with ply, format,"
            ),
            "{said}"
        );
        assert!(!said.contains("ParseError"), "{said}");
    }

    #[test]
    fn ascii_errors_name_line_and_element() {
        let body = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 0 1 4\n";
        let e = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::IndexOutOfRange);
        assert_eq!(e.location.line, Some(15), "{e}");
        assert_eq!(e.location.element, Some(("face".to_string(), 1)));

        // Overflows f32 to infinity.
        let body = "0 0 0\n1 0 0\n0 1 1e39\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        let e = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NonFinite, "{e}");
        assert_eq!(e.location.line, Some(12), "{e}");
        // The crate's grammar refuses `nan` text outright; still an error on that line.
        let body = "0 0 0\n1 0 0\n0 1 nan\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        let e = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.location.line, Some(12), "{e}");
        println!("{e}");

        let body = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n";
        let e = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Truncated, "{e}");
        assert_eq!(e.location.element, Some(("face".to_string(), 1)));

        let body = "0 0 0\n1 0 0\n0 1 0\n1 x 0\n3 0 1 2\n3 0 1 3\n";
        let e = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax, "{e}");
        assert_eq!(e.location.line, Some(13), "{e}");
    }

    #[test]
    fn header_problems() {
        let e = parse(b"plx\nformat ascii 1.0\nend_header\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Header, "{e}");
        let e = parse(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::MissingElement, "{e}");
        assert!(e.message.contains("face"), "{e}");
        let h = HEAD.replace("list uchar int", "list uchar float");
        let e = parse(h.as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::WrongType, "{e}");
    }
}
