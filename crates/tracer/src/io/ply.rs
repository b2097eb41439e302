//! PLY (ASCII, binary little endian and binary big endian) through `ply-rs-bw`.
//!
//! The header is parsed by the crate and then checked here: a `vertex` element with scalar
//! `x`, `y`, `z` and a `face` element with an integer list `vertex_indices` (or
//! `vertex_index`). The payload is read one element at a time with the crate's element
//! readers, so that an error can name the line (ASCII) or byte offset (binary) and the element
//! index. Other elements (edges, materials, ...) are parsed and ignored.
//!
//! Before the crate reads the header, its lines are checked here: the `ply` line, a bound on
//! the header's size and its lines' length (the crate reads a line whole, however long), text
//! outside comments. A file that is no PLY file is thus refused from its first bytes.

use super::polygon::Cutter;
use super::{
    check_not_empty, fan, fan_and_cut, finish_mesh, guard, line_of_offset, lone_cr_to_lf, quote,
    read_file_after, skip_bom, warn_unclipped, LoadError, LoadErrorKind, Location, QUOTED_CHARS,
};
use crate::math::Vec3;
use crate::mesh::Mesh;
use ply_rs_bw::parser::{Parser, Reader};
use ply_rs_bw::ply::{
    ElementDef, Encoding, Header, PropertyAccess, PropertyAccessResult, PropertyType, ScalarType,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, ErrorKind};
use std::num::IntErrorKind;
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
    // A file that is no PLY file (a disk image, a mesh of another format) is refused from its
    // first bytes, before the rest of it is read into memory.
    let bytes = read_file_after(path, HEADER_HEAD, |head| {
        if head.len() < HEADER_HEAD {
            // The whole file: the checks `parse_ply` makes first, in its order.
            check_not_empty(path, head)?;
        }
        check_header_text(path, head)
    })?;
    parse_ply(path, &bytes)
}

/// Parses PLY contents already in memory; `path` is used only in messages.
pub fn parse_ply(path: &Path, bytes: &[u8]) -> Result<(Mesh, Vec<String>), LoadError> {
    check_not_empty(path, bytes)?;
    check_header_text(path, bytes)?;
    let bytes = with_text_comments(with_line_feeds(bytes));
    guard(path, || read(path, &bytes))
}

/// The longest header line read. ply-rs reads a header line into a `String` whatever its
/// length, and a file without line breaks is one line: a gigabyte of it took five times its
/// size in memory before being refused. Real header lines are a few dozen bytes.
const MAX_HEADER_LINE: usize = 64 * 1024;

/// The most bytes a header may take before its `end_header` line starts. Real headers are a
/// few hundred bytes; a file without `end_header` this far in is no PLY file.
const MAX_HEADER: usize = 1 << 20;

/// The bytes [`check_header_text`] can look at: a line that starts at [`MAX_HEADER`], at its
/// longest, and its line end.
const HEADER_HEAD: usize = MAX_HEADER + MAX_HEADER_LINE + 2;

/// Checks the lines of the header before ply-rs reads them: the first must be `ply`, none may
/// be longer than [`MAX_HEADER_LINE`], `end_header` must come within [`MAX_HEADER`] bytes,
/// and a line other than a comment must be UTF-8. Reads no more than the first
/// [`HEADER_HEAD`] bytes. A header that ends too early is let through: ply-rs says what is
/// missing.
fn check_header_text(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    let text = skip_bom(bytes);
    let error = |line: usize, message: String| {
        LoadError::new(path, LoadErrorKind::Header, Location::line(line), message)
    };
    // A quote of a line that may be megabytes long and need not be text.
    let shown = |line: &[u8]| quote(&String::from_utf8_lossy(&line[..line.len().min(1024)]));
    let mut start = 0usize;
    let mut line_no = 0usize;
    loop {
        line_no += 1;
        // Before the end of the file is looked for: a prefix of HEADER_HEAD bytes of a file
        // gives the answer the whole file gives.
        if start > MAX_HEADER {
            return Err(error(
                line_no,
                format!(
                    "no `end_header` line within the first {MAX_HEADER} bytes: the header of a \
                     PLY file is not that long"
                ),
            ));
        }
        let rest = &text[start.min(text.len())..];
        if rest.is_empty() {
            return Ok(());
        }
        let window = &rest[..rest.len().min(MAX_HEADER_LINE + 1)];
        let len = window
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(window.len());
        let line = &rest[..len];
        if line_no == 1 {
            let magic = line
                .iter()
                .rposition(|&b| b != b' ' && b != b'\t')
                .map_or(&line[..0], |last| &line[..=last]);
            if magic != b"ply" {
                return Err(error(
                    1,
                    format!(
                        "not a PLY file: the first line is `{}`, not `ply`",
                        shown(line)
                    ),
                ));
            }
        }
        if len > MAX_HEADER_LINE {
            return Err(error(
                line_no,
                format!(
                    "a header line longer than {MAX_HEADER_LINE} bytes (`{}`): not a PLY header",
                    shown(line)
                ),
            ));
        }
        if line.starts_with(b"end_header") {
            return Ok(());
        }
        if std::str::from_utf8(line).is_err() && !is_comment(line) {
            return Err(error(
                line_no,
                format!("the header line is not UTF-8 text (`{}`)", shown(line)),
            ));
        }
        start += len;
        // CR LF is one line end, as is a lone CR (see `with_line_feeds`).
        if rest.get(len) == Some(&b'\r') {
            start += 1;
            if rest.get(len + 1) == Some(&b'\n') {
                start += 1;
            }
        } else {
            start += 1;
        }
    }
}

/// A `comment` or `obj_info` header line: free text that nothing reads.
fn is_comment(line: &[u8]) -> bool {
    let word = line
        .split(|&b| b == b' ' || b == b'\t')
        .next()
        .unwrap_or_default();
    word == b"comment" || word == b"obj_info"
}

/// The file with the bytes of header comments that are not UTF-8 (a Latin-1 author's name,
/// say) turned into `?`, one byte for one byte. ply-rs reads header lines as text and would
/// refuse the file over a comment that nothing reads.
fn with_text_comments(bytes: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    let mut bad = Vec::new();
    let mut start = 0usize;
    // `check_header_text` has bounded the header; lone CRs are line feeds by now.
    for line in bytes.split(|&b| b == b'\n') {
        if line.starts_with(b"end_header") {
            break;
        }
        if is_comment(line) && std::str::from_utf8(line).is_err() {
            bad.push(start..start + line.len());
        }
        start += line.len() + 1;
    }
    if bad.is_empty() {
        return bytes;
    }
    let mut bytes = bytes.into_owned();
    for range in bad {
        for b in &mut bytes[range] {
            if !b.is_ascii() {
                *b = b'?';
            }
        }
    }
    Cow::Owned(bytes)
}

/// The file with old Mac line ends (a lone CR) turned into line feeds: everywhere in an ASCII
/// file, in the header only of a binary one (its payload bytes are data).
fn with_line_feeds(bytes: &[u8]) -> Cow<'_, [u8]> {
    const END: &[u8] = b"end_header";
    let Some(at) = bytes.windows(END.len()).position(|w| w == END) else {
        return lone_cr_to_lf(bytes);
    };
    // The header ends with the line end after `end_header`, in the style of its other lines:
    // a CR LF is one line end, but a payload after a lone CR may start with a 10 (LF) byte of
    // data.
    let crlf = bytes[..at].windows(2).any(|w| w == b"\r\n");
    let end = at + END.len();
    let header_len = match &bytes[end.min(bytes.len())..] {
        [b'\r', b'\n', ..] if crlf => end + 2,
        [_, ..] => end + 1,
        [] => bytes.len(),
    };
    let header = lone_cr_to_lf(&bytes[..header_len]);
    let ascii = header.split(|&b| b == b'\n').any(|line| {
        let mut words = line
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty());
        words.next() == Some(b"format") && words.next() == Some(b"ascii")
    });
    if ascii {
        return lone_cr_to_lf(bytes);
    }
    if matches!(header, Cow::Borrowed(_)) {
        return Cow::Borrowed(bytes);
    }
    let mut out = header.into_owned();
    out.extend_from_slice(&bytes[header_len..]);
    Cow::Owned(out)
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
    /// The ASCII line read last, for messages that quote a value from it.
    last_line: &'a str,
    header: &'a Header,
    declared: &'a DeclaredAt,
}

impl<'a> Payload<'a> {
    /// Reads element `index` of `def` into an `E`; errors carry the line or byte offset.
    fn next<E: PropertyAccess>(&mut self, def: &ElementDef, index: usize) -> Result<E, LoadError> {
        let start = self.cursor.position() as usize;
        let here = Location::element(&def.name, index);
        match self.encoding {
            Encoding::Ascii => {
                let (line_no, line) = self.next_text_line(def, index)?;
                self.last_line = line;
                let values: Vec<&str> = line.split_whitespace().collect();
                read_ascii_element(&values, def).map_err(|bad| {
                    let (kind, message) = match bad {
                        Bad::Value { kind, message } => (kind, message),
                        // The line is not what the header says it is: a value missing, or one
                        // nobody declared (a list longer than its count, say).
                        Bad::Count => {
                            let declared = declared_values(&values, def);
                            let extra = &values[declared.min(values.len())..];
                            let extra = if !extra.is_empty() {
                                // Enough words for a quote, however many the line has.
                                let shown = &extra[..extra.len().min(QUOTED_CHARS)];
                                format!("; extra: `{}`", quote(&shown.join(" ")))
                            } else {
                                String::new()
                            };
                            let message = format!(
                                "{} {index} has {} value{}, but the properties the header \
                                 declares for `{}` take {declared}{}{extra} ({})",
                                quote(&def.name),
                                values.len(),
                                if values.len() == 1 { "" } else { "s" },
                                quote(&def.name),
                                if has_list(def) {
                                    " (with the lengths its list counts give)"
                                } else {
                                    ""
                                },
                                self.count_hint(&values, def, index),
                            );
                            (LoadErrorKind::Syntax, message)
                        }
                    };
                    LoadError::new(self.path, kind, here.with_line(line_no), message)
                })
            }
            Encoding::BinaryLittleEndian | Encoding::BinaryBigEndian => {
                let parser = Parser::<E>::new();
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
                                quote(&def.name),
                                def.count
                            ),
                        )
                    } else if e.to_string().contains("cannot be negative") {
                        (
                            LoadErrorKind::Syntax,
                            format!(
                                "{} {index} holds a list whose length is negative",
                                quote(&def.name)
                            ),
                        )
                    } else {
                        (
                            LoadErrorKind::Syntax,
                            format!("cannot read {} {index}: {e}", quote(&def.name)),
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

    /// Which element a line was read as, and the count the header gives for it or for the
    /// element before it. A line with the wrong number of values is often a good line of the
    /// element before or after, read as this one because a count in the header is wrong: when
    /// the line reads as that element, the message asks about the count.
    fn count_hint(&self, values: &[&str], def: &ElementDef, index: usize) -> String {
        let with_values = || {
            self.header
                .elements
                .values()
                .filter(|d| !d.properties.is_empty())
        };
        let previous = with_values().take_while(|d| d.name != def.name).last();
        let next = with_values().skip_while(|d| d.name != def.name).nth(1);
        let reads_as = |other: &ElementDef| read_ascii_element::<Skip>(values, other).is_ok();
        let ask = |fits: bool| if fits { ": is that count right?" } else { "" };
        let name = quote(&def.name);
        match previous {
            Some(previous) if index == 0 => format!(
                "read as `{name}` 0; {} {} `{}` element{} before it{}",
                self.declared.announces(&previous.name),
                previous.count,
                quote(&previous.name),
                if previous.count == 1 { "" } else { "s" },
                ask(reads_as(previous)),
            ),
            _ => {
                let on = self
                    .declared
                    .elements
                    .get(&def.name)
                    .map_or_else(String::new, |n| format!(" on line {n}"));
                format!(
                    "read as `{name}` {index} of the {} the header announces{on}{}",
                    def.count,
                    ask(next.is_some_and(reads_as)),
                )
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
                        quote(&def.name),
                        def.count
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
                    "the line is not UTF-8 text",
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

/// Why an ASCII line could not be read as its element.
enum Bad {
    /// The line holds fewer or more values than the declared properties take.
    Count,
    /// One value is wrong; the message names the property and quotes the value.
    Value {
        kind: LoadErrorKind,
        message: String,
    },
}

/// Reads one ASCII line, split into `values`, as element `def`, through `E`'s typed setters.
/// Done here rather than by the crate so that a bad value is reported in the file's own words
/// rather than the crate's grammar.
fn read_ascii_element<E: PropertyAccess>(values: &[&str], def: &ElementDef) -> Result<E, Bad> {
    let mut element = E::new();
    let mut rest = values;
    for (name, prop) in &def.properties {
        let (&first, after) = rest.split_first().ok_or(Bad::Count)?;
        rest = after;
        match &prop.data_type {
            PropertyType::Scalar(ty) => {
                set_scalar(&mut element, name, ty, first).map_err(|c| c.about(name, first))?;
            }
            PropertyType::List(count_ty, item_ty) => {
                let len = ascii_int(first, count_ty).map_err(|c| c.about_length(name, first))?;
                let len = usize::try_from(len).map_err(|_| Bad::Value {
                    kind: LoadErrorKind::Syntax,
                    message: format!(
                        "list `{}`: the length `{}` is negative",
                        quote(name),
                        quote(first)
                    ),
                })?;
                if rest.len() < len {
                    return Err(Bad::Count);
                }
                let (items, after) = rest.split_at(len);
                rest = after;
                set_list(&mut element, name, item_ty, items)?;
            }
        }
    }
    if rest.is_empty() {
        Ok(element)
    } else {
        Err(Bad::Count)
    }
}

/// What is wrong with one ASCII value, before the property it belongs to is named.
struct Complaint {
    kind: LoadErrorKind,
    what: String,
}

impl Complaint {
    fn syntax(what: impl Into<String>) -> Complaint {
        Complaint {
            kind: LoadErrorKind::Syntax,
            what: what.into(),
        }
    }
    fn about(self, property: &str, value: &str) -> Bad {
        Bad::Value {
            kind: self.kind,
            message: format!(
                "property `{}`: `{}` {}",
                quote(property),
                quote(value),
                self.what
            ),
        }
    }
    fn about_length(self, list: &str, value: &str) -> Bad {
        Bad::Value {
            kind: self.kind,
            message: format!(
                "list `{}`: the length `{}` {}",
                quote(list),
                quote(value),
                self.what
            ),
        }
    }
    fn about_item(self, list: &str, value: &str) -> Bad {
        let item = if FACE_LISTS.contains(&list) {
            "vertex index"
        } else {
            "item"
        };
        Bad::Value {
            kind: self.kind,
            message: format!(
                "list `{}`: {item} `{}` {}",
                quote(list),
                quote(value),
                self.what
            ),
        }
    }
}

/// The PLY name and the range of an integer type.
fn int_range(ty: &ScalarType) -> (&'static str, i64, i64) {
    match ty {
        ScalarType::Char => ("char", i8::MIN.into(), i8::MAX.into()),
        ScalarType::UChar => ("uchar", 0, u8::MAX.into()),
        ScalarType::Short => ("short", i16::MIN.into(), i16::MAX.into()),
        ScalarType::UShort => ("ushort", 0, u16::MAX.into()),
        ScalarType::Int => ("int", i32::MIN.into(), i32::MAX.into()),
        ScalarType::UInt => ("uint", 0, u32::MAX.into()),
        // Not integer types; callers only ask for these after `is_integer`.
        ScalarType::Float => ("float", i64::MIN, i64::MAX),
        ScalarType::Double => ("double", i64::MIN, i64::MAX),
    }
}

/// An ASCII value of integer type `ty`, range-checked.
fn ascii_int(text: &str, ty: &ScalarType) -> Result<i64, Complaint> {
    let (name, min, max) = int_range(ty);
    let out_of_range = || Complaint::syntax(format!("is out of range for {name} ({min} to {max})"));
    match text.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(_) => Err(out_of_range()),
        Err(e)
            if matches!(
                e.kind(),
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
            ) =>
        {
            Err(out_of_range())
        }
        Err(_) if text.parse::<f64>().is_ok() && text.bytes().any(|b| b.is_ascii_digit()) => {
            Err(Complaint::syntax("is not an integer"))
        }
        Err(_) => Err(Complaint::syntax("is not a number")),
    }
}

/// An ASCII value of a float type. Rust also reads `nan` and `inf`, which are no coordinates.
fn ascii_float(text: &str) -> Result<f64, Complaint> {
    match text.parse::<f64>() {
        Ok(v) if text.bytes().any(|b| b.is_ascii_digit()) => Ok(v),
        Ok(v) => Err(Complaint {
            kind: LoadErrorKind::NonFinite,
            what: if v.is_nan() {
                "is not a number".to_string()
            } else {
                "is not a finite number".to_string()
            },
        }),
        Err(_) => Err(Complaint::syntax("is not a number")),
    }
}

fn set_scalar<E: PropertyAccess>(
    e: &mut E,
    name: &str,
    ty: &ScalarType,
    text: &str,
) -> Result<(), Complaint> {
    // The casts are exact: `ascii_int` has checked the range of `ty`.
    match ty {
        ScalarType::Char => e.set_char(name, ascii_int(text, ty)? as i8),
        ScalarType::UChar => e.set_uchar(name, ascii_int(text, ty)? as u8),
        ScalarType::Short => e.set_short(name, ascii_int(text, ty)? as i16),
        ScalarType::UShort => e.set_ushort(name, ascii_int(text, ty)? as u16),
        ScalarType::Int => e.set_int(name, ascii_int(text, ty)? as i32),
        ScalarType::UInt => e.set_uint(name, ascii_int(text, ty)? as u32),
        ScalarType::Float => e.set_float(name, ascii_float(text)? as f32),
        ScalarType::Double => e.set_double(name, ascii_float(text)?),
    };
    Ok(())
}

fn set_list<E: PropertyAccess>(
    e: &mut E,
    name: &str,
    ty: &ScalarType,
    items: &[&str],
) -> Result<(), Bad> {
    let ints = || -> Result<Vec<i64>, Bad> {
        items
            .iter()
            .map(|t| ascii_int(t, ty).map_err(|c| c.about_item(name, t)))
            .collect()
    };
    let floats = || -> Result<Vec<f64>, Bad> {
        items
            .iter()
            .map(|t| ascii_float(t).map_err(|c| c.about_item(name, t)))
            .collect()
    };
    // The casts are exact: `ascii_int` has checked the range of `ty`.
    match ty {
        ScalarType::Char => e.set_list_char(name, ints()?.into_iter().map(|v| v as i8).collect()),
        ScalarType::UChar => e.set_list_uchar(name, ints()?.into_iter().map(|v| v as u8).collect()),
        ScalarType::Short => {
            e.set_list_short(name, ints()?.into_iter().map(|v| v as i16).collect())
        }
        ScalarType::UShort => {
            e.set_list_ushort(name, ints()?.into_iter().map(|v| v as u16).collect())
        }
        ScalarType::Int => e.set_list_int(name, ints()?.into_iter().map(|v| v as i32).collect()),
        ScalarType::UInt => e.set_list_uint(name, ints()?.into_iter().map(|v| v as u32).collect()),
        ScalarType::Float => {
            e.set_list_float(name, floats()?.into_iter().map(|v| v as f32).collect())
        }
        ScalarType::Double => e.set_list_double(name, floats()?),
    };
    Ok(())
}

/// The text of property `name` on an ASCII line of element `def` (lists take their length
/// and items), for messages that quote the file.
fn ascii_value<'l>(line: &'l str, def: &ElementDef, name: &str) -> Option<&'l str> {
    let values: Vec<&str> = line.split_whitespace().collect();
    let mut at = 0usize;
    for (prop_name, prop) in &def.properties {
        if prop_name == name {
            return values.get(at).copied();
        }
        let len = match prop.data_type {
            PropertyType::List(..) => values.get(at)?.parse::<usize>().ok()?,
            PropertyType::Scalar(_) => 0,
        };
        at = at.checked_add(1)?.checked_add(len)?;
    }
    None
}

/// The fewest bytes one binary element of `def` can take: every scalar, and every list's
/// length with no items.
fn min_binary_size(def: &ElementDef) -> u64 {
    def.properties
        .values()
        .map(|p| match &p.data_type {
            PropertyType::Scalar(t) | PropertyType::List(t, _) => scalar_size(t),
        })
        .sum()
}

fn scalar_size(t: &ScalarType) -> u64 {
    match t {
        ScalarType::Char | ScalarType::UChar => 1,
        ScalarType::Short | ScalarType::UShort => 2,
        ScalarType::Int | ScalarType::UInt | ScalarType::Float => 4,
        ScalarType::Double => 8,
    }
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
    check_version(path, &header, skip_bom(bytes))?;
    let declared = check_declarations(path, skip_bom(bytes))?;
    let (vertex_def, face_def, face_list) = check_header(path, &header, &declared)?;
    let vertex_count = vertex_def.count;
    if vertex_count > u32::MAX as usize {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Syntax,
            declared.element(&vertex_def.name),
            format!("{vertex_count} vertices; at most 2^32 - 1 are supported"),
        ));
    }

    let cursor = reader.into_inner();
    let mut payload = Payload {
        path,
        bytes,
        cursor,
        encoding: header.encoding,
        last_line: "",
        header: &header,
        declared: &declared,
    };
    let mut positions = Vec::new();
    let mut indices = Vec::new();
    let mut short_faces = 0usize;
    let mut polygon = Vec::new();
    let mut cutter = Cutter::default();
    // Faces that come before the vertices (which the format allows) are fanned as they are
    // read and cut once every position is known: where each polygon of four or more vertices
    // starts in `indices`, and its triangle count.
    let mut later: Vec<(usize, usize)> = Vec::new();
    for def in header.elements.values() {
        if def.properties.is_empty() {
            // Such an element holds no bytes (binary) and no values (ASCII): reading it one by
            // one would take as long as the count says and read nothing.
            continue;
        }
        if header.encoding != Encoding::Ascii {
            check_room(&payload, def)?;
        }
        if def.name == vertex_def.name {
            positions.reserve(def.count.min(1 << 20));
            for i in 0..def.count {
                let at = payload.cursor.position();
                let v: VertexRec = payload.next(def, i)?;
                let p = Vec3::new(v.p[0] as f32, v.p[1] as f32, v.p[2] as f32);
                if !p.is_finite() {
                    let axis = (0..3).find(|&a| !p[a].is_finite()).unwrap_or(0);
                    let name = ["x", "y", "z"][axis];
                    // Quote the file: its `1e39` says more than the `inf` it became.
                    let value = match header.encoding {
                        Encoding::Ascii => ascii_value(payload.last_line, def, name)
                            .map_or_else(|| format!("{:?}", v.p[axis]), quote),
                        _ => format!("{:?}", v.p[axis]),
                    };
                    return Err(LoadError::new(
                        path,
                        LoadErrorKind::NonFinite,
                        located(&payload, at, def, i),
                        format!("property `{name}`: `{value}` is not a finite f32"),
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
                if positions.len() == vertex_count {
                    fan_and_cut(&polygon, &positions, &mut indices, &mut cutter);
                } else {
                    if polygon.len() > 3 {
                        later.push((indices.len(), polygon.len() - 2));
                    }
                    fan(&polygon, &mut indices);
                }
            }
        } else {
            for i in 0..def.count {
                payload.next::<Skip>(def, i)?;
            }
        }
    }

    for (start, count) in later {
        let fan = &mut indices[start..start + count];
        // Checked against the announced vertex count, which a whole file holds.
        if fan
            .iter()
            .flatten()
            .all(|&i| (i as usize) < positions.len())
        {
            cutter.cut(&positions, fan);
        }
    }
    let mut warnings = Vec::new();
    warn_unclipped(path, &cutter, &mut warnings);
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

/// Refuses at once a binary element count the rest of the file cannot hold, rather than
/// reading up to the end of the file to find out.
fn check_room(payload: &Payload, def: &ElementDef) -> Result<(), LoadError> {
    let at = payload.cursor.position();
    let left = payload.bytes.len() as u64 - at.min(payload.bytes.len() as u64);
    let size = min_binary_size(def);
    let needed = u128::from(size) * def.count as u128;
    if needed <= u128::from(left) {
        return Ok(());
    }
    Err(LoadError::new(
        payload.path,
        LoadErrorKind::Truncated,
        Location::default().with_byte_offset(at),
        format!(
            "the header announces {} `{}` elements of {}{size} byte{} each{}, but only {left} \
             bytes follow",
            def.count,
            quote(&def.name),
            if has_list(def) { "at least " } else { "" },
            if size == 1 { "" } else { "s" },
            if size == 1 {
                String::new()
            } else {
                format!(" ({needed} bytes)")
            },
        ),
    ))
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
                "cannot read the line `{}` (a header line starts with ply, format, comment, \
                 obj_info, element, property or end_header)",
                quote(line)
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

/// Refuses a format version other than 1.0, the only one published: a later version, should
/// one come, may lay its data out otherwise, and read as 1.0 it would give a wrong mesh rather
/// than an error. (RPly and plyodine refuse other versions too.)
fn check_version(path: &Path, header: &Header, text: &[u8]) -> Result<(), LoadError> {
    let v = &header.version;
    if (v.major, v.minor) == (1, 0) {
        return Ok(());
    }
    let line = text
        .split(|&b| b == b'\n')
        .position(|line| line.split(u8::is_ascii_whitespace).next() == Some(b"format"))
        .map_or_else(Location::default, |n| Location::line(n + 1));
    Err(LoadError::new(
        path,
        LoadErrorKind::Header,
        line,
        format!(
            "PLY format version {}.{}: this reader knows only version 1.0",
            v.major, v.minor
        ),
    ))
}

/// The header lines (1-based) that declare each element and each property, for messages
/// about what they declare: ply-rs keeps no line numbers.
#[derive(Default)]
struct DeclaredAt {
    elements: HashMap<String, usize>,
    /// Keyed by element and property name.
    properties: HashMap<(String, String), usize>,
}

impl DeclaredAt {
    fn element(&self, element: &str) -> Location {
        self.elements
            .get(element)
            .map_or_else(Location::default, |&n| Location::line(n))
    }
    fn property(&self, element: &str, property: &str) -> Location {
        self.properties
            .get(&(element.to_string(), property.to_string()))
            .map_or_else(Location::default, |&n| Location::line(n))
    }
    /// "the header, line 3, announces" (or without the line, should it be unknown).
    fn announces(&self, element: &str) -> String {
        match self.elements.get(element) {
            Some(n) => format!("the header, line {n}, announces"),
            None => "the header announces".to_string(),
        }
    }
}

/// Refuses an element, or a property of one element, declared twice, and says on which lines
/// the others are declared. The crate keeps one definition per name and attaches later
/// properties to whichever element it holds last, so a repeated declaration would surface as
/// a misleading error far from its cause.
fn check_declarations(path: &Path, text: &[u8]) -> Result<DeclaredAt, LoadError> {
    let mut declared = DeclaredAt::default();
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
                format!("element `{}`", quote(name))
            } else {
                format!("property `{}` of element `{}`", quote(name), quote(element))
            };
            return Err(LoadError::new(
                path,
                LoadErrorKind::Header,
                Location::line(line_no),
                format!("{what} is declared twice (first on line {first})"),
            ));
        }
        seen.push((name, line_no));
        if kind == "element" {
            declared.elements.insert(name.to_string(), line_no);
        } else {
            declared
                .properties
                .insert((element.to_string(), name.to_string()), line_no);
        }
    }
    Ok(declared)
}

/// Checks that the header declares what a triangle mesh needs, with usable types; an error
/// names the line of the declaration at fault.
fn check_header<'h>(
    path: &Path,
    header: &'h Header,
    declared: &DeclaredAt,
) -> Result<(&'h ElementDef, &'h ElementDef, &'static str), LoadError> {
    let missing =
        |at: Location, what: String| LoadError::new(path, LoadErrorKind::MissingElement, at, what);
    let wrong =
        |at: Location, what: String| LoadError::new(path, LoadErrorKind::WrongType, at, what);
    for element in header.elements.values() {
        for (name, prop) in &element.properties {
            if let PropertyType::List(count, _) = &prop.data_type {
                if !is_integer(count) {
                    return Err(wrong(
                        declared.property(&element.name, name),
                        format!(
                            "property `{}.{}` has {} list lengths; a length must be an integer \
                             type",
                            quote(&element.name),
                            quote(name),
                            type_name(count)
                        ),
                    ));
                }
            }
        }
    }
    let vertex = header.elements.get("vertex").ok_or_else(|| {
        missing(
            Location::default(),
            "the header declares no `vertex` element".into(),
        )
    })?;
    for axis in ["x", "y", "z"] {
        let prop = vertex.properties.get(axis).ok_or_else(|| {
            missing(
                declared.element("vertex"),
                format!("element `vertex` has no property `{axis}` in the header"),
            )
        })?;
        if let PropertyType::List(count, item) = &prop.data_type {
            return Err(wrong(
                declared.property("vertex", axis),
                format!(
                    "property `vertex.{axis}` is a list ({} {}); a coordinate must be a number",
                    type_name(count),
                    type_name(item)
                ),
            ));
        }
    }
    let face = header.elements.get("face").ok_or_else(|| {
        missing(
            Location::default(),
            "the header declares no `face` element".into(),
        )
    })?;
    let (name, prop) = FACE_LISTS
        .iter()
        .find_map(|n| face.properties.get(*n).map(|p| (*n, p)))
        .ok_or_else(|| {
            missing(
                declared.element("face"),
                "element `face` has no `vertex_indices` (or `vertex_index`) list".into(),
            )
        })?;
    let at = declared.property("face", name);
    match &prop.data_type {
        PropertyType::List(_, item) if is_integer(item) => {}
        PropertyType::List(_, item) => {
            return Err(wrong(
                at,
                format!(
                    "property `face.{name}` holds {} values; vertex indices must be integers",
                    type_name(item)
                ),
            ))
        }
        PropertyType::Scalar(ty) => {
            return Err(wrong(
                at,
                format!(
                    "property `face.{name}` is a single {}; it must be a list of vertex indices",
                    type_name(ty)
                ),
            ))
        }
    }
    Ok((vertex, face, name))
}

/// The PLY name of a type: `float`, `uchar`, ...
fn type_name(t: &ScalarType) -> &'static str {
    int_range(t).0
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
    fn a_concave_polygon_covers_its_own_area_even_before_its_vertices() {
        let text =
            "ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int vertex_indices\n\
                    element vertex 6\nproperty float x\nproperty float y\nproperty float z\n\
                    end_header\n6 0 1 2 3 4 5\n0.6 0.2 0\n0.2 0.2 0\n0.2 1 0\n0 1 0\n0 0 0\n\
                    0.6 0 0\n";
        let (mesh, warnings) = parse(text.as_bytes()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(mesh.triangle_count(), 4);
        let area: f32 = (0..4)
            .map(|i| {
                let [a, b, c] = mesh.triangle(i);
                (b - a).cross(c - a).length() / 2.0
            })
            .sum();
        // The fan around the inner corner would cover 0.68.
        assert!((area - 0.28).abs() < 1e-6, "{area}");
    }

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

        let body = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n";
        let e = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Truncated, "{e}");
        assert_eq!(e.location.element, Some(("face".to_string(), 1)));

        let body = "0 0 0\n1 0 0\n0 1 0\n1 x 0\n3 0 1 2\n3 0 1 3\n";
        let e = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax, "{e}");
        assert_eq!(e.location.line, Some(13), "{e}");
    }

    /// A binary little-endian file: a triangle, plus `extra` declared before the faces.
    fn binary(extra_header: &str, extra_body: &[u8]) -> Vec<u8> {
        let mut b = format!(
            "ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n\
             property float y\nproperty float z\n{extra_header}element face 1\n\
             property list uchar int vertex_indices\nend_header\n"
        )
        .into_bytes();
        for v in [0.0f32, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(extra_body);
        b.push(3);
        for i in 0i32..3 {
            b.extend_from_slice(&i.to_le_bytes());
        }
        b
    }

    /// Runs `f` on another thread and fails the test if it takes longer than a few seconds:
    /// the bug it guards against is a loop that never ends.
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("still reading after 10 s")
    }

    #[test]
    fn elements_without_properties_are_skipped_at_once() {
        let b = binary("element empty 1000000000000\n", b"");
        let (m, w) = within_seconds(move || parse(&b).map_err(|e| e.to_string())).unwrap();
        assert_eq!(m.triangle_count(), 1);
        assert!(w.is_empty(), "{w:?}");
        // The largest count there is, after the faces.
        let mut b = binary("", b"");
        let at = b.windows(10).position(|w| w == b"end_header").unwrap();
        b.splice(
            at..at,
            b"element empty 18446744073709551615\n".iter().copied(),
        );
        let (m, _) = within_seconds(move || parse(&b).map_err(|e| e.to_string())).unwrap();
        assert_eq!(m.triangle_count(), 1);
        // ASCII: no values, so no lines either; blank lines are allowed anywhere.
        let text = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n\
                    property float z\nelement empty 1000000000000\nelement face 1\n\
                    property list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n\n\
                    3 0 1 2\n";
        let (m, _) =
            within_seconds(move || parse(text.as_bytes()).map_err(|e| e.to_string())).unwrap();
        assert_eq!(m.triangle_count(), 1);
    }

    #[test]
    fn a_binary_count_the_file_cannot_hold_is_refused_at_once() {
        let b = binary(
            "element edge 1000000000\nproperty int a\nproperty int b\n",
            b"",
        );
        let edges_at = b.len() as u64 - 13;
        let e = within_seconds(move || parse(&b).unwrap_err());
        assert_eq!(e.kind, LoadErrorKind::Truncated, "{e}");
        assert!(
            e.message.contains(
                "the header announces 1000000000 `edge` elements of 8 bytes each \
                 (8000000000 bytes), but only 13 bytes follow"
            ),
            "{e}"
        );
        assert_eq!(e.location.byte_offset, Some(edges_at), "{e}");
        let mut b = binary("", b"");
        let at = b.windows(7).position(|w| w == b"face 1\n").unwrap();
        b.splice(at..at + 6, b"face 18446744073709551615".iter().copied());
        let e = within_seconds(move || parse(&b).unwrap_err());
        assert!(
            e.message
                .contains("`face` elements of at least 1 byte each, but only 13 bytes follow"),
            "{e}"
        );
    }

    /// The message for one bad ASCII data line, with the parser's internals nowhere in it.
    fn ascii_error(head: &str, body: &str) -> LoadError {
        let e = parse(format!("{head}{body}").as_bytes()).unwrap_err();
        for internal in [
            "Error",
            "String:",
            "expected one of",
            "ParseIntError",
            "index 1",
        ] {
            assert!(!e.message.contains(internal), "{e}");
        }
        e
    }

    #[test]
    fn bad_ascii_values_are_named_in_plain_words() {
        let verts = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n";
        let e = ascii_error(HEAD, "0 0 0\n1 0 0\nnan 1 0\n1 1 0\n3 0 1 2\n3 0 1 3\n");
        assert_eq!(e.location, Location::element("vertex", 2).with_line(12));
        assert_eq!(e.message, "property `x`: `nan` is not a number");
        assert_eq!(e.kind, LoadErrorKind::NonFinite);
        let e = ascii_error(HEAD, &format!("{verts}3 0 1.5 2\n3 0 1 3\n"));
        assert_eq!(e.location, Location::element("face", 0).with_line(14));
        assert_eq!(
            e.message,
            "list `vertex_indices`: vertex index `1.5` is not an integer"
        );
        let e = ascii_error(HEAD, &format!("{verts}3 0 1 2\n3 0 1 4294967296\n"));
        assert_eq!(e.location, Location::element("face", 1).with_line(15));
        assert_eq!(
            e.message,
            "list `vertex_indices`: vertex index `4294967296` is out of range for int \
             (-2147483648 to 2147483647)"
        );
        let e = ascii_error(HEAD, &format!("{verts}300 0 1 2\n3 0 1 3\n"));
        assert_eq!(
            e.message,
            "list `vertex_indices`: the length `300` is out of range for uchar (0 to 255)"
        );
        let e = ascii_error(HEAD, &format!("{verts}3 0x0 1 2\n3 0 1 3\n"));
        assert_eq!(
            e.message,
            "list `vertex_indices`: vertex index `0x0` is not a number"
        );
        let e = ascii_error(HEAD, &format!("{verts}comment here\n3 0 1 3\n"));
        assert_eq!(
            e.message,
            "list `vertex_indices`: the length `comment` is not a number"
        );
        let signed = HEAD.replace("list uchar int", "list char int");
        let e = ascii_error(&signed, &format!("{verts}-3 0 1 2\n3 0 1 3\n"));
        assert_eq!(
            e.message,
            "list `vertex_indices`: the length `-3` is negative"
        );
        let e = ascii_error(HEAD, &format!("{verts}3 0 1\n3 0 1 3\n"));
        assert_eq!(e.kind, LoadErrorKind::Syntax);
        assert!(e.message.starts_with("face 0 has 3 values, but"), "{e}");
    }

    #[test]
    fn coordinates_too_large_for_f32_are_quoted_as_written() {
        let body = "0 0 0\n1 0 0\n0 1e39 0\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        let e = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NonFinite);
        assert_eq!(e.message, "property `y`: `1e39` is not a finite f32");
        let h = HEAD.replace("float", "double");
        let body = "0 0 0\n1 0 0\n0 1 -2.5E+40\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        let e = parse(format!("{h}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.message, "property `z`: `-2.5E+40` is not a finite f32");
    }

    #[test]
    fn old_mac_line_ends_are_line_ends() {
        let body = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        let text = format!("{HEAD}{body}").replace('\n', "\r");
        let (m, w) = parse(text.as_bytes()).unwrap();
        assert_eq!(m.triangle_count(), 2);
        assert!(w.is_empty(), "{w:?}");
        // Binary: the header's CRs only; a 13 (CR) in the payload is data.
        let mut b = binary("", b"");
        let end = b.windows(11).position(|w| w == b"end_header\n").unwrap() + 11;
        for c in &mut b[..end] {
            if *c == b'\n' {
                *c = b'\r';
            }
        }
        b[end..end + 4].copy_from_slice(&f32::from_bits(0x3f80_000d).to_le_bytes());
        let (m, _) = parse(&b).unwrap();
        assert_eq!(m.positions[0].x, f32::from_bits(0x3f80_000d));
        let e = parse(format!("{HEAD}0 0 0\r1 x 0\r").as_bytes()).unwrap_err();
        assert_eq!(e.location.line, Some(11), "{e}");
    }

    /// The repro of a fuzzing review: the payload was read from one byte too late, the LF of
    /// `end_header`'s CR LF taken for its first byte.
    #[test]
    fn a_binary_file_with_crlf_header_lines_reads_from_the_right_byte() {
        let lf = binary("", b"");
        let end = lf.windows(11).position(|w| w == b"end_header\n").unwrap() + 11;
        let crlf = [
            &String::from_utf8_lossy(&lf[..end])
                .replace('\n', "\r\n")
                .into_bytes()[..],
            &lf[end..],
        ]
        .concat();
        let (m, w) = parse(&crlf).unwrap();
        assert_eq!(m.triangle_count(), 1);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(m.positions, parse(&lf).unwrap().0.positions);
        // A payload that starts with a 10 (LF) after an LF header stays whole.
        let mut b = lf.clone();
        b[end..end + 4].copy_from_slice(&f32::from_bits(0x3f80_000a).to_le_bytes());
        let (m, _) = parse(&b).unwrap();
        assert_eq!(m.positions[0].x, f32::from_bits(0x3f80_000a));
        // ... and after a CR LF header too.
        let mut b = crlf.clone();
        let end = crlf.len() - (lf.len() - end);
        b[end..end + 4].copy_from_slice(&f32::from_bits(0x3f80_000a).to_le_bytes());
        let (m, _) = parse(&b).unwrap();
        assert_eq!(m.positions[0].x, f32::from_bits(0x3f80_000a));
    }

    #[test]
    fn format_versions_other_than_1_0_are_refused_on_their_line() {
        for version in ["2.0", "1.1", "0.9"] {
            let h = HEAD.replace("ascii 1.0", &format!("ascii {version}"));
            let e = parse(h.as_bytes()).unwrap_err();
            assert_eq!(e.kind, LoadErrorKind::Header, "{e}");
            assert_eq!(
                e.to_string(),
                format!("t.ply: line 2: PLY format version {version}: this reader knows only version 1.0")
            );
        }
        let body = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        let (m, _) = parse(format!("{HEAD}{body}").as_bytes()).unwrap();
        assert_eq!(m.triangle_count(), 2);
    }

    /// A megabyte token or header line used to give a megabyte error line.
    #[test]
    fn long_tokens_and_lines_are_quoted_in_part() {
        let long = "x".repeat(1 << 20);
        let cut = format!("{}…", &long[..80]);
        let verts = "0 0 0\n1 0 0\n0 1 0\n";
        let e = parse(format!("{HEAD}{verts}1 {long} 0\n").as_bytes()).unwrap_err();
        assert_eq!(e.message, format!("property `y`: `{cut}` is not a number"));
        let e = parse(format!("{HEAD}{verts}1 1 0\n3 0 1 2 {long}\n").as_bytes()).unwrap_err();
        assert!(
            e.message.contains(&format!("; extra: `{cut}` (read as")),
            "{e}"
        );
        let many = "9 ".repeat(1 << 19);
        let e = parse(format!("{HEAD}{verts}1 1 0\n3 0 1 2 {many}\n").as_bytes()).unwrap_err();
        assert!(
            e.message
                .contains(&format!("; extra: `{}…` (read as", &many[..80])),
            "{e}"
        );
        // Header lines as long as a header line may be.
        let long = "x".repeat(MAX_HEADER_LINE - 16);
        let e = parse(format!("ply\nformat ascii 1.0\n{long}\n").as_bytes()).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "not a valid PLY header: cannot read the line `{cut}` (a header line starts \
                 with ply, format, comment, obj_info, element, property or end_header)"
            )
        );
        let twice = format!("element {long} 1\nproperty float a\n");
        let e = parse(format!("ply\nformat ascii 1.0\n{twice}{twice}end_header\n").as_bytes())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("t.ply: line 5: element `{cut}` is declared twice (first on line 3)")
        );
    }

    /// A file without line breaks used to be read into memory several times over (ply-rs
    /// reads a header line into a `String`) before being refused.
    #[test]
    fn a_file_without_line_breaks_is_refused_from_its_first_bytes() {
        let a = vec![b'a'; 4 << 20];
        let e = parse(&a).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Header, "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "t.ply: line 1: not a PLY file: the first line is `{}…`, not `ply`",
                "a".repeat(QUOTED_CHARS)
            )
        );
        let e = parse(b"solid cube\nfacet normal 0 0 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ply: line 1: not a PLY file: the first line is `solid cube`, not `ply`"
        );
        let e = parse(&[b"ply\n", &a[..]].concat()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "t.ply: line 2: a header line longer than {MAX_HEADER_LINE} bytes (`{}…`): not \
                 a PLY header",
                "a".repeat(QUOTED_CHARS)
            )
        );
        // Short lines, but no end to the header.
        let comment = format!("comment {}\n", "c".repeat(55));
        assert_eq!(comment.len(), 64);
        let endless = format!(
            "ply\nformat ascii 1.0\n{}",
            comment.repeat(MAX_HEADER / 64 + 2)
        );
        let e = parse(endless.as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Header, "{e}");
        assert_eq!(e.location.line, Some(3 + (MAX_HEADER - 21) / 64 + 1), "{e}");
        assert_eq!(
            e.message,
            format!(
                "no `end_header` line within the first {MAX_HEADER} bytes: the header of a PLY \
                 file is not that long"
            )
        );
        // The magic line may carry trailing blanks, as ply-rs allows.
        let body = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        let text = format!("{HEAD}{body}").replacen("ply\n", "ply \t\r\n", 1);
        assert_eq!(parse(text.as_bytes()).unwrap().0.triangle_count(), 2);
    }

    /// From a file, the check sees the first bytes only; the rest is not read.
    #[test]
    fn a_large_file_that_is_no_ply_file_is_refused_by_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zeros.ply");
        // Sparse: no disk space, and quick to make.
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(64 << 20).unwrap();
        drop(file);
        let e = load_ply_with_report(&path).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Header, "{e}");
        assert_eq!(e.location, Location::line(1));
        assert_eq!(
            e.message,
            format!(
                "not a PLY file: the first line is `{}…`, not `ply`",
                "\\0".repeat(QUOTED_CHARS)
            )
        );
        let mut seen = 0;
        let e = read_file_after(&path, HEADER_HEAD, |head| {
            seen = head.len();
            check_header_text(&path, head)
        })
        .unwrap_err();
        assert_eq!(seen, HEADER_HEAD);
        assert_eq!(e.location, Location::line(1));
        // A good file is read whole all the same.
        let body = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        std::fs::write(&path, format!("{HEAD}{body}")).unwrap();
        let (m, w) = load_ply_with_report(&path).unwrap();
        assert_eq!(m.triangle_count(), 2);
        assert!(w.is_empty(), "{w:?}");
    }

    /// A Latin-1 comment (an author's name) used to refuse the whole file.
    #[test]
    fn comments_need_not_be_utf8() {
        let body = b"0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        let with = |line: &[u8]| {
            let head = HEAD.as_bytes();
            let at = HEAD.find("element").unwrap();
            [&head[..at], line, &head[at..], &body[..]].concat()
        };
        for line in [
            &b"comment made by Jos\xe9\n"[..],
            b"obj_info caf\xe9\r\n",
            b"comment\t\xff\xfe\n",
        ] {
            let (m, w) = parse(&with(line)).unwrap();
            assert_eq!(m.triangle_count(), 2);
            assert!(w.is_empty(), "{w:?}");
        }
        // Binary: the payload is not touched, and stays where it was.
        let b = binary("", b"");
        let at = b.windows(7).position(|w| w == b"element").unwrap();
        let latin = [&b[..at], b"comment \xe9\xe9\xe9\n", &b[at..]].concat();
        assert_eq!(
            parse(&latin).unwrap().0.positions,
            parse(&b).unwrap().0.positions
        );
        // In the data, the same.
        let e = parse(&[HEAD.as_bytes(), b"0 0 0\n1 0 \xe9\n"].concat()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ply: line 11, vertex 1: the line is not UTF-8 text"
        );
        // Elsewhere in the header, such a byte is an error on its line.
        let e = parse(&with(b"element v\xe9rtex 1\n")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Header);
        assert_eq!(
            e.to_string(),
            "t.ply: line 3: the header line is not UTF-8 text (`element v\u{fffd}rtex 1`)"
        );
    }

    /// A wrong element count used to be reported as a bad line, the good line that followed.
    #[test]
    fn a_value_count_error_names_the_count_the_header_gives() {
        let body = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 0 1 3\n";
        // Too low: the fourth vertex is read as the first face.
        let h = HEAD.replace("vertex 4", "vertex 3");
        let e = parse(format!("{h}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.location, Location::element("face", 0).with_line(13));
        assert_eq!(
            e.message,
            "face 0 has 3 values, but the properties the header declares for `face` take 2 (with \
             the lengths its list counts give); extra: `0` (read as `face` 0; the header, line \
             3, announces 3 `vertex` elements before it: is that count right?)"
        );
        // Too high: the first face is read as a fifth vertex.
        let h = HEAD.replace("vertex 4", "vertex 5");
        let e = parse(format!("{h}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.location, Location::element("vertex", 4).with_line(14));
        assert_eq!(
            e.message,
            "vertex 4 has 4 values, but the properties the header declares for `vertex` take 3; \
             extra: `2` (read as `vertex` 4 of the 5 the header announces on line 3: is that \
             count right?)"
        );
        // A line that is wrong by itself: the count is given, but not questioned.
        let body = "0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 0 1 3 9\n";
        let e = parse(format!("{HEAD}{body}").as_bytes()).unwrap_err();
        assert_eq!(e.location, Location::element("face", 1).with_line(15));
        assert!(
            e.message.ends_with(
                "; extra: `9` (read as `face` 1 of the 2 the header announces on line 7)"
            ),
            "{e}"
        );
    }

    /// These used to carry no line, and Rust's names of the types (`Float`).
    #[test]
    fn header_type_errors_name_their_line_and_the_ply_type() {
        let cases = [
            (
                "list uchar int vertex_indices",
                "list uchar float vertex_indices",
                "line 8: property `face.vertex_indices` holds float values; vertex indices must \
                 be integers",
            ),
            (
                "list uchar int vertex_indices",
                "list double int vertex_indices",
                "line 8: property `face.vertex_indices` has double list lengths; a length must be \
                 an integer type",
            ),
            (
                "list uchar int vertex_indices",
                "uint vertex_indices",
                "line 8: property `face.vertex_indices` is a single uint; it must be a list of \
                 vertex indices",
            ),
            (
                "property float y",
                "property list uchar float y",
                "line 5: property `vertex.y` is a list (uchar float); a coordinate must be a \
                 number",
            ),
            (
                "property float z\n",
                "",
                "line 3: element `vertex` has no property `z` in the header",
            ),
            (
                "property list uchar int vertex_indices\n",
                "property int other\n",
                "line 7: element `face` has no `vertex_indices` (or `vertex_index`) list",
            ),
            (
                "vertex 4",
                "vertex 4294967296",
                "line 3: 4294967296 vertices; at most 2^32 - 1 are supported",
            ),
        ];
        for (from, to, want) in cases {
            assert!(HEAD.contains(from), "{from}");
            let e = parse(HEAD.replacen(from, to, 1).as_bytes()).unwrap_err();
            assert_eq!(e.to_string(), format!("t.ply: {want}"), "{to}");
        }
    }

    #[test]
    fn list_lengths_must_be_integers() {
        let h = HEAD.replace("list uchar int", "list float int");
        let e = parse(h.as_bytes()).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::WrongType, "{e}");
        assert_eq!(
            e.message,
            "property `face.vertex_indices` has float list lengths; a length must be an integer \
             type"
        );
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
