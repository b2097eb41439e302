//! STL (ASCII and binary). Binary facets are read by `stl_io`; ASCII is read here, word by
//! word (keywords in any case, lines broken anywhere), so that an error names the line holding
//! the bad value and a file of several `solid ... endsolid` blocks (what many exporters write,
//! one block per part) is read whole.
//!
//! `stl_io` decides ASCII versus binary by whether the file starts with `solid `. Real files
//! break that rule both ways: binary files whose 80-byte header begins with `solid` (common in
//! CAD exports) and ASCII files with a bare `solid` line or an upper-case `SOLID`. This layer
//! decides by the binary size rule first (84 + 50 × facet count bytes), then by content. Identical corner positions are merged into
//! one vertex, so a closed STL mesh becomes a closed indexed mesh.

use super::{
    check_not_empty, finish_mesh, guard, lone_cr_to_lf, quote, read_file, skip_bom, LoadError,
    LoadErrorKind, Location, QUOTED_CHARS,
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
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let starts_solid = text[start..]
        .get(..5)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"solid"))
        && text.get(start + 5).is_none_or(|b| b.is_ascii_whitespace());
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

/// The words of a text, each with the number of the line it is on.
struct Words<'a> {
    text: &'a str,
    pos: usize,
    /// The line `pos` is on.
    line: usize,
    /// The line of the last word read: where a file that ends too early ends.
    last: usize,
}

/// One word and where it is: its line and its byte offset.
#[derive(Clone, Copy)]
struct Word<'a> {
    line: usize,
    at: usize,
    text: &'a str,
}

impl<'a> Word<'a> {
    fn is(&self, keyword: &str) -> bool {
        self.text.eq_ignore_ascii_case(keyword)
    }
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<Word<'a>> {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
            if bytes[self.pos] == b'\n' {
                self.line += 1;
            }
            self.pos += 1;
        }
        if self.pos == bytes.len() {
            return None;
        }
        let at = self.pos;
        while self.pos < bytes.len() && !bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        self.last = self.line;
        Some(Word {
            line: self.line,
            at,
            text: &self.text[at..self.pos],
        })
    }

    fn peek(&self) -> Option<Word<'a>> {
        let mut copy = Words { ..*self };
        copy.next()
    }

    /// Skips a name: the words left on `line`, up to one of `stops` (a file on one line goes on
    /// with its next keyword).
    fn skip_name(&mut self, line: usize, stops: &[&str]) {
        while let Some(w) = self.peek() {
            if w.line != line || stops.iter().any(|s| w.is(s)) {
                break;
            }
            self.next();
        }
    }

    /// The words from `word` to the end of its line.
    fn rest_of_line(&self, word: Word<'a>) -> std::str::SplitWhitespace<'a> {
        let rest = &self.text[word.at..];
        rest.split('\n').next().unwrap_or(rest).split_whitespace()
    }

    /// The text from `word` to the end of its line, for a message.
    fn shown(&self, word: Word<'a>) -> String {
        // Enough words for a quote, however many the line has.
        let words: Vec<&str> = self.rest_of_line(word).take(QUOTED_CHARS).collect();
        quote(&words.join(" "))
    }
}

/// Reads ASCII STL: any number of `solid ... endsolid` blocks, nothing else after the last
/// block. Each facet is `facet normal nx ny nz`, `outer loop`, three `vertex x y z`, `endloop`,
/// `endfacet`, usually one statement a line, but any whitespace separates words.
fn read_ascii(path: &Path, text: &[u8]) -> Result<Welded, LoadError> {
    // Old Mac files end lines with a lone CR; counted as line ends, lines are numbered right.
    let text = lone_cr_to_lf(text);
    // Solid names are free text, often Latin-1 from old CAD tools, and are skipped unread.
    // Elsewhere a byte that is not UTF-8 cannot make a keyword or a number, so decoded as
    // U+FFFD it is refused all the same, quoted on its line.
    let text = String::from_utf8_lossy(&text);
    let mut r = AsciiReader {
        path,
        words: Words {
            text: &text,
            pos: 0,
            line: 1,
            last: 1,
        },
        facet: 0,
        opened: 1,
    };
    let mut welded = Welded::default();
    let mut solids = 0usize;
    while let Some(word) = r.words.next() {
        if !word.is("solid") {
            let found = r.words.shown(word);
            let message = if solids == 0 {
                format!("expected `solid`, found `{found}`")
            } else {
                format!(
                    "expected another `solid` or the end of the file after `endsolid`, found \
                     `{found}`"
                )
            };
            return Err(LoadError::new(
                path,
                LoadErrorKind::Syntax,
                Location::line(word.line),
                message,
            ));
        }
        solids += 1;
        r.opened = word.line;
        r.words.skip_name(word.line, &["facet", "endsolid"]);
        while let Some(corners) = r.facet()? {
            if !welded.push(corners) {
                return Err(r.error(LoadErrorKind::Syntax, r.words.last, TOO_MANY.into()));
            }
            r.facet += 1;
        }
    }
    Ok(welded)
}

struct AsciiReader<'a> {
    path: &'a Path,
    words: Words<'a>,
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

    /// The next word, which must exist because `wanted` belongs there.
    fn expect(&mut self, wanted: &str) -> Result<Word<'a>, LoadError> {
        match self.words.next() {
            Some(word) => Ok(word),
            None => Err(self.error(
                LoadErrorKind::Truncated,
                self.words.last,
                format!(
                    "the file ends where {wanted} belongs (in the solid opened on line {})",
                    self.opened
                ),
            )),
        }
    }

    /// Keywords that must come next, exactly (in any case).
    fn statement(&mut self, wanted: &[&str]) -> Result<(), LoadError> {
        let text = wanted.join(" ");
        let first = self.expect(&format!("`{text}`"))?;
        let mut word = first;
        for (i, keyword) in wanted.iter().enumerate() {
            if i > 0 {
                word = self.expect(&format!("`{text}`"))?;
            }
            if !word.is(keyword) {
                let message = format!("expected `{text}`, found `{}`", self.words.shown(first));
                return Err(self.error(LoadErrorKind::Syntax, word.line, message));
            }
        }
        Ok(())
    }

    /// Three numbers after `keyword` (a word already read); `what` names one in messages.
    fn numbers(&mut self, keyword: Word<'a>, what: &str) -> Result<[f32; 3], LoadError> {
        let mut xyz = [0.0f32; 3];
        for c in &mut xyz {
            let word = self.expect(&format!("a {what}"))?;
            let Ok(v) = word.text.parse::<f32>() else {
                // A keyword on a later line: this statement is short of a number, which is
                // best shown by quoting the statement.
                let message = if word.line != keyword.line {
                    format!(
                        "expected `{} x y z`, found `{}`",
                        keyword.text.to_ascii_lowercase(),
                        self.words.shown(keyword)
                    )
                } else {
                    format!("{what} `{}` is not a number", quote(word.text))
                };
                return Err(self.error(LoadErrorKind::Syntax, keyword.line, message));
            };
            *c = v;
        }
        Ok(xyz)
    }

    /// The corners of the next facet, or `None` at the `endsolid` closing the solid.
    fn facet(&mut self) -> Result<Option<[Vec3; 3]>, LoadError> {
        let word = self.expect("`facet normal` or `endsolid`")?;
        if word.is("endsolid") {
            self.words.skip_name(word.line, &["solid"]);
            return Ok(None);
        }
        let normal = self.words.peek();
        if !word.is("facet") || !normal.is_some_and(|n| n.is("normal")) {
            let message = format!(
                "expected `facet normal nx ny nz` or `endsolid`, found `{}`",
                self.words.shown(word)
            );
            return Err(self.error(LoadErrorKind::Syntax, word.line, message));
        }
        let normal = self.expect("`normal`")?;
        // The normal is not used (the winding gives it), but a facet without one is not STL.
        self.numbers(normal, "facet normal component")?;
        self.statement(&["outer", "loop"])?;
        let mut corners = [Vec3::ZERO; 3];
        for corner in &mut corners {
            let vertex = self.expect("`vertex`")?;
            if !vertex.is("vertex") {
                let message = format!(
                    "expected `vertex x y z`, found `{}`",
                    self.words.shown(vertex)
                );
                return Err(self.error(LoadErrorKind::Syntax, vertex.line, message));
            }
            let xyz = self.numbers(vertex, "vertex coordinate")?;
            if let Some(axis) = xyz.iter().position(|c| !c.is_finite()) {
                // Quote the file: its `1e39` says more than the `inf` it became.
                let value = self.words.rest_of_line(vertex).nth(axis + 1).unwrap_or("?");
                let message = format!("vertex coordinate `{}` is not a finite f32", quote(value));
                return Err(self.error(LoadErrorKind::NonFinite, vertex.line, message));
            }
            // Fold -0 into +0 so that the two weld into one vertex.
            *corner = Vec3::new(xyz[0] + 0.0, xyz[1] + 0.0, xyz[2] + 0.0);
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
    fn upper_case_keywords_are_ascii() {
        let text = format!(
            "SOLID PART\n{}ENDSOLID PART\n",
            ascii_facet([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]).to_uppercase()
        );
        let (m, _) = parse_stl(Path::new("t.stl"), text.as_bytes()).unwrap();
        assert_eq!(m.triangle_count(), 1);
    }

    #[test]
    fn any_whitespace_separates_statements() {
        let facet = ascii_facet([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
        let text = format!("solid one line {facet} endsolid one line")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let (m, _) = parse_stl(Path::new("t.stl"), text.as_bytes()).unwrap();
        assert_eq!(m.triangle_count(), 1);
        let e = parse_stl(
            Path::new("t.stl"),
            text.replace("0 1 0", "0 x 0").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.location.line, Some(1), "{e}");
        assert_eq!(e.message, "vertex coordinate `x` is not a number");
        // Two solids on one line, each with a name.
        let two = format!("{text} {text}");
        let (m, _) = parse_stl(Path::new("t.stl"), two.as_bytes()).unwrap();
        assert_eq!(m.triangle_count(), 2);
        // Old Mac line ends: lines are numbered as the file shows them.
        let text = format!("solid x\n{facet}endsolid x\n").replace('\n', "\r");
        let (m, _) = parse_stl(Path::new("t.stl"), text.as_bytes()).unwrap();
        assert_eq!(m.triangle_count(), 1);
        let e = parse_stl(
            Path::new("t.stl"),
            text.replace("0 1 0", "0 1e39 0").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.location.line, Some(6), "{e}");
        assert_eq!(e.message, "vertex coordinate `1e39` is not a finite f32");
        let e = parse_stl(Path::new("t.stl"), b"solid x\n").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Truncated);
        assert_eq!(e.location.line, Some(1), "{e}");
    }

    #[test]
    fn a_binary_file_without_facets_says_what_it_ignored() {
        let mut b = vec![0u8; 84];
        b.extend_from_slice(&[0; 100]);
        let e = parse_stl(Path::new("t.stl"), &b).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NoTriangles);
        assert_eq!(
            e.message,
            "the file holds no faces (ignored 100 bytes after the last of 0 binary STL facets)"
        );
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

    /// A Latin-1 byte in a solid's name used to refuse the file as "not text".
    #[test]
    fn solid_names_need_not_be_utf8() {
        let facet = ascii_facet([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
        let text = [
            &b"solid caf\xe9\n"[..],
            facet.as_bytes(),
            b"endsolid caf\xe9 \xff\xfe\n",
        ]
        .concat();
        let (m, w) = parse_stl(Path::new("t.stl"), &text).unwrap();
        assert_eq!(m.triangle_count(), 1);
        assert!(w.is_empty(), "{w:?}");
        // Where a number belongs, such a byte is refused on its line.
        let mut text = [&b"solid caf\xe9\n"[..], facet.as_bytes(), b"endsolid\n"].concat();
        let at = text.windows(12).position(|w| w == b"vertex 1 0 0").unwrap();
        text[at + 11] = 0xe9;
        let e = parse_stl(Path::new("t.stl"), &text).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax);
        assert_eq!(
            e.to_string(),
            "t.stl: line 5, facet 0: vertex coordinate `\u{fffd}` is not a number"
        );
    }

    /// A megabyte token used to give a megabyte error line.
    #[test]
    fn long_tokens_are_quoted_in_part() {
        let long = "x".repeat(1 << 20);
        let cut = format!("{}…", &long[..80]);
        let facet = "solid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\n";
        let e = parse_stl(
            Path::new("t.stl"),
            format!("{facet}vertex 0 1 {long}\n").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            format!("vertex coordinate `{cut}` is not a number")
        );
        let nines = "9".repeat(1 << 20);
        let e = parse_stl(
            Path::new("t.stl"),
            format!("{facet}vertex 0 {nines} 0\n").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            format!("vertex coordinate `{}…` is not a finite f32", &nines[..80])
        );
        let e = parse_stl(
            Path::new("t.stl"),
            format!("{facet}{long} 0 1 0\n").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.message, format!("expected `vertex x y z`, found `{cut}`"));
    }
}
