//! The scene cache: a built [`Geometry`] as one self-describing byte layout, written to a file
//! and memory-mapped back with no rebuild and no copy.
//!
//! # Layout (format version 1, native byte order, checked on load)
//!
//! | bytes | content |
//! | --- | --- |
//! | 0..256 | header: magic `PRISMGEO`, format version, byte-order mark, total length, xxh3 checksums of the header and of the payload, offset and length of each section, element sizes, top-level root, scene bounds, the key of the input it was built from ([`Geometry::input_key`]; 0 in files written before it existed) |
//! | 256.. | sections, each starting at a multiple of 64 bytes: mesh records, instances, BVH nodes, triangle blocks, vertex positions, triangle indices |
//!
//! Everything in a section is plain data (`bytemuck::Pod`) referring to other items by
//! index, so a [`Geometry`] reads its arrays straight out of the bytes, whoever owns them: a
//! `Vec<u8>`, a memory-mapped file, or a node-shared array (anything implementing
//! [`ByteSource`]). Loading checks, in order: length, magic, byte order, version, header
//! checksum, declared length, payload checksum, section bounds and alignment, the scene's
//! bounds (finite, each minimum at most its maximum), and then the structure (every index in
//! range, every tree a tree of bounded depth), so a truncated, corrupt or foreign file is a
//! [`CacheError`] and never undefined behaviour or a panic in a later query. The payload
//! checksum costs one pass over the bytes.

use crate::bvh::{leaf_parts, Node4, EMPTY, LEAF, MAX_DEPTH};
use crate::geometry::{Geometry, Instance, MeshRecord, View};
use crate::math::Vec3;
use crate::triangle::Tri4;
use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// Bytes that a [`Geometry`] can borrow its arrays from.
///
/// `bytes` must return the same slice on every call for as long as the source lives. The
/// start should be aligned to 64 bytes for the best cache behaviour (memory maps and
/// node-shared arrays are page-aligned); 4-byte alignment is required and checked.
pub trait ByteSource: Send + Sync {
    fn bytes(&self) -> &[u8];
}

impl ByteSource for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl ByteSource for Box<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl ByteSource for memmap2::Mmap {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Why a cache file or byte buffer could not be used. Each variant names the source (a file
/// path, or "in-memory geometry bytes") and what was wrong with it.
#[derive(Debug, Error)]
pub enum CacheError {
    #[error("{name}: cannot {action}: {source}")]
    Io {
        name: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: is {kind}, not a regular file")]
    NotAFile { name: String, kind: &'static str },
    #[error("{name}: not a prism geometry cache (the first 8 bytes are not \"PRISMGEO\")")]
    BadMagic { name: String },
    #[error("{name}: the file is empty")]
    Empty { name: String },
    #[error("{name}: geometry cache format version {found}, but this build reads version {expected}; rebuild the cache")]
    WrongVersion {
        name: String,
        found: u32,
        expected: u32,
    },
    #[error("{name}: written on a machine with the other byte order; rebuild the cache here")]
    WrongByteOrder { name: String },
    #[error("{name}: truncated: {expected} bytes expected, {actual} present")]
    Truncated {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("{name}: {part} checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): the data is corrupt")]
    Checksum {
        name: String,
        part: &'static str,
        stored: u64,
        computed: u64,
    },
    #[error("{name}: the bytes start at address {address:#x}, which is not 4-byte aligned")]
    Misaligned { name: String, address: usize },
    #[error("{name}: corrupt: {what}")]
    Corrupt { name: String, what: String },
}

impl CacheError {
    /// Whether the bytes were recognisably a prism cache (their magic matched) that cannot be
    /// used: another version's or byte order's, or damaged — a file to remove (or replace) to
    /// have it rebuilt. `false` for anything else: bytes that are not a prism cache (a
    /// checkpoint, a mesh, `/dev/null`), a file that cannot be opened, which are not prism's
    /// to remove.
    pub fn is_prism_cache(&self) -> bool {
        match self {
            CacheError::WrongVersion { .. }
            | CacheError::WrongByteOrder { .. }
            | CacheError::Truncated { .. }
            | CacheError::Checksum { .. }
            | CacheError::Corrupt { .. } => true,
            CacheError::Io { .. }
            | CacheError::NotAFile { .. }
            | CacheError::BadMagic { .. }
            | CacheError::Empty { .. }
            | CacheError::Misaligned { .. } => false,
        }
    }
}

pub(crate) const MAGIC: [u8; 8] = *b"PRISMGEO";
pub(crate) const VERSION: u32 = 1;
const BYTE_ORDER_MARK: u32 = 0x0102_0304;
pub(crate) const HEADER_LEN: usize = 256;
const SECTION_ALIGN: usize = 64;
const SECTIONS: usize = 6;
const SECTION_NAMES: [&str; SECTIONS] = [
    "mesh records",
    "instances",
    "BVH nodes",
    "triangle blocks",
    "positions",
    "triangle indices",
];

fn elem_sizes() -> [u32; SECTIONS] {
    [
        size_of::<MeshRecord>(),
        size_of::<Instance>(),
        size_of::<Node4>(),
        size_of::<Tri4>(),
        size_of::<Vec3>(),
        size_of::<[u32; 3]>(),
    ]
    .map(|s| s as u32)
}

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct Header {
    magic: [u8; 8],
    version: u32,
    byte_order: u32,
    total_len: u64,
    payload_hash: u64,
    header_hash: u64,
    /// `[byte offset, byte length]` per section.
    sections: [[u64; 2]; SECTIONS],
    elem_sizes: [u32; SECTIONS],
    tlas_root: u32,
    tlas_start: u32,
    triangle_count: u64,
    bounds: [f32; 6],
    /// [`Geometry::input_key`] of the meshes and instances built (in what was `reserved[0..2]`,
    /// so older files read as key 0: built from unknown input).
    source_key: u64,
    reserved: [u32; 12],
}

const _: () = assert!(size_of::<Header>() == HEADER_LEN);

fn header_hash(h: &Header) -> u64 {
    let mut h = *h;
    h.header_hash = 0;
    xxhash_rust::xxh3::xxh3_64(bytemuck::bytes_of(&h))
}

/// A 64-byte aligned chunk: the unit of [`AlignedBytes`].
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// An owned, 64-byte aligned byte buffer: where a freshly built geometry lives.
///
/// A large geometry gets a mapping of its own, advised to use transparent huge pages:
/// incoherent rays over a large mesh visit nodes and triangles all over it, and with 4 KiB
/// pages most of those visits also miss the TLB (see docs/performance.md, "Huge pages").
pub(crate) struct AlignedBytes {
    store: Store,
    len: usize,
}

enum Store {
    Heap(Vec<Line>),
    Mapped(memmap2::MmapMut),
}

/// From this size on, a geometry's bytes get their own mapping, in whole 2 MiB huge pages
/// (Linux aligns an anonymous mapping of a multiple of that size to it).
const HUGE_PAGE: usize = 2 << 20;

impl AlignedBytes {
    fn zeroed(len: usize) -> AlignedBytes {
        let store = if len >= HUGE_PAGE {
            memmap2::MmapMut::map_anon(len.next_multiple_of(HUGE_PAGE))
                .ok()
                .map(|map| {
                    // Only a hint: where transparent huge pages are off the kernel refuses
                    // it, and small pages work as well, more slowly.
                    #[cfg(target_os = "linux")]
                    let _ = map.advise(memmap2::Advice::HugePage);
                    Store::Mapped(map)
                })
        } else {
            None
        };
        let store = store.unwrap_or_else(|| Store::Heap(vec![Line([0; 64]); len.div_ceil(64)]));
        AlignedBytes { store, len }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.store {
            Store::Heap(lines) => &mut bytemuck::cast_slice_mut(lines)[..self.len],
            Store::Mapped(map) => &mut map[..self.len],
        }
    }

    /// Whether the bytes have a mapping of their own (the huge-page route).
    #[cfg(test)]
    fn is_mapped(&self) -> bool {
        matches!(self.store, Store::Mapped(_))
    }
}

impl ByteSource for AlignedBytes {
    fn bytes(&self) -> &[u8] {
        match &self.store {
            Store::Heap(lines) => &bytemuck::cast_slice(lines)[..self.len],
            Store::Mapped(map) => &map[..self.len],
        }
    }
}

/// The arrays and scalars of a geometry, to be laid out by [`serialize`].
pub(crate) struct Parts<'a> {
    pub meshes: &'a [MeshRecord],
    pub instances: &'a [Instance],
    pub nodes: &'a [Node4],
    pub blocks: &'a [Tri4],
    pub positions: &'a [Vec3],
    pub indices: &'a [[u32; 3]],
    pub tlas_root: u32,
    pub tlas_start: u32,
    pub triangle_count: u64,
    pub bounds: (Vec3, Vec3),
    pub source_key: u64,
}

/// Where everything is in a validated byte layout.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub ranges: [Range<usize>; SECTIONS],
    pub tlas_root: u32,
    pub tlas_start: u32,
    pub triangle_count: u64,
    pub bounds: (Vec3, Vec3),
    pub source_key: u64,
}

/// Bytes copied per task when a geometry is laid out: one huge page.
const COPY_PIECE: usize = HUGE_PAGE;

/// Lays the parts out with header and checksums in a fresh aligned buffer.
pub(crate) fn serialize(p: &Parts) -> AlignedBytes {
    let sections: [&[u8]; SECTIONS] = [
        bytemuck::cast_slice(p.meshes),
        bytemuck::cast_slice(p.instances),
        bytemuck::cast_slice(p.nodes),
        bytemuck::cast_slice(p.blocks),
        bytemuck::cast_slice(p.positions),
        bytemuck::cast_slice(p.indices),
    ];
    let mut table = [[0u64; 2]; SECTIONS];
    let mut end = HEADER_LEN;
    for (entry, s) in table.iter_mut().zip(&sections) {
        let start = end.next_multiple_of(SECTION_ALIGN);
        *entry = [start as u64, s.len() as u64];
        end = start + s.len();
    }
    let mut out = AlignedBytes::zeroed(end);
    let buf = out.bytes_mut();
    // In pieces on every core: the copy is also where a fresh mapping's pages are first
    // touched, and the kernel's zeroing of them costs as much as the copy itself.
    for (entry, s) in table.iter().zip(&sections) {
        let to = &mut buf[entry[0] as usize..][..s.len()];
        if s.len() <= COPY_PIECE {
            to.copy_from_slice(s);
        } else {
            to.par_chunks_mut(COPY_PIECE)
                .zip(s.par_chunks(COPY_PIECE))
                .for_each(|(to, from)| to.copy_from_slice(from));
        }
    }
    let (lo, hi) = p.bounds;
    let mut h = Header {
        magic: MAGIC,
        version: VERSION,
        byte_order: BYTE_ORDER_MARK,
        total_len: end as u64,
        payload_hash: xxhash_rust::xxh3::xxh3_64(&buf[HEADER_LEN..]),
        header_hash: 0,
        sections: table,
        elem_sizes: elem_sizes(),
        tlas_root: p.tlas_root,
        tlas_start: p.tlas_start,
        triangle_count: p.triangle_count,
        bounds: [lo.x, lo.y, lo.z, hi.x, hi.y, hi.z],
        source_key: p.source_key,
        reserved: [0; 12],
    };
    h.header_hash = header_hash(&h);
    buf[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&h));
    out
}

/// Checks the header, the checksums (the payload's only with `verify_payload`: not for bytes
/// just serialised here) and the section table of `bytes`.
pub(crate) fn parse(bytes: &[u8], name: &str, verify_payload: bool) -> Result<Layout, CacheError> {
    let address = bytes.as_ptr() as usize;
    if !address.is_multiple_of(4) {
        return Err(CacheError::Misaligned {
            name: name.to_string(),
            address,
        });
    }
    let h = check_header(
        &bytes[..bytes.len().min(HEADER_LEN)],
        bytes.len() as u64,
        name,
    )?;
    let name = name.to_string();
    let computed = if verify_payload {
        xxhash_rust::xxh3::xxh3_64(&bytes[HEADER_LEN..])
    } else {
        h.payload_hash
    };
    if computed != h.payload_hash {
        return Err(CacheError::Checksum {
            name,
            part: "payload",
            stored: h.payload_hash,
            computed,
        });
    }
    let corrupt = |what: String| CacheError::Corrupt {
        name: name.clone(),
        what,
    };
    if h.elem_sizes != elem_sizes() {
        return Err(corrupt(format!(
            "element sizes {:?}, expected {:?}",
            h.elem_sizes,
            elem_sizes()
        )));
    }
    let mut ranges: [Range<usize>; SECTIONS] = Default::default();
    for (i, [off, len]) in h.sections.iter().copied().enumerate() {
        let section = SECTION_NAMES[i];
        let end = off.checked_add(len).filter(|&e| e <= bytes.len() as u64);
        let Some(end) = end else {
            return Err(corrupt(format!(
                "the {section} section ({len} bytes at {off}) runs past the end"
            )));
        };
        if off < HEADER_LEN as u64 || off % SECTION_ALIGN as u64 != 0 {
            return Err(corrupt(format!(
                "the {section} section starts at {off}, not a multiple of {SECTION_ALIGN} after the header"
            )));
        }
        if len % h.elem_sizes[i] as u64 != 0 {
            return Err(corrupt(format!(
                "the {section} section is {len} bytes, not a whole number of {}-byte items",
                h.elem_sizes[i]
            )));
        }
        ranges[i] = off as usize..end as usize;
    }
    // The scene's extent, which Scene::new judges: a box of finite corners, as `serialize`
    // writes it (Geometry::build refuses any other), or the fault would be put on the scene.
    let b = h.bounds;
    let shown = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(", ");
    let box_is = |what: &str| {
        corrupt(format!(
            "the scene bounds ({}) to ({}) {what}",
            shown(&b[..3]),
            shown(&b[3..])
        ))
    };
    if !b.iter().all(|v| v.is_finite()) {
        return Err(box_is("are not finite"));
    }
    if (0..3).any(|a| b[a] > b[a + 3]) {
        return Err(box_is("are inverted (a minimum above its maximum)"));
    }
    Ok(Layout {
        ranges,
        tlas_root: h.tlas_root,
        tlas_start: h.tlas_start,
        triangle_count: h.triangle_count,
        bounds: (Vec3::new(b[0], b[1], b[2]), Vec3::new(b[3], b[4], b[5])),
        source_key: h.source_key,
    })
}

/// Checks a header: `head` holds the first bytes (up to [`HEADER_LEN`]), `len` is the length
/// of the whole, which must be the one the header declares.
fn check_header(head: &[u8], len: u64, name: &str) -> Result<Header, CacheError> {
    let name = name.to_string();
    // Not "the first 8 bytes are not PRISMGEO": there are none.
    if len == 0 {
        return Err(CacheError::Empty { name });
    }
    if head.len() < 8 || head[..8] != MAGIC {
        // A file shorter than the magic that is a prefix of it was truncated; anything else
        // is not a cache at all.
        if head.len() < 8 && MAGIC.starts_with(head) && !head.is_empty() {
            return Err(CacheError::Truncated {
                name,
                expected: HEADER_LEN as u64,
                actual: len,
            });
        }
        return Err(CacheError::BadMagic { name });
    }
    if head.len() < HEADER_LEN {
        return Err(CacheError::Truncated {
            name,
            expected: HEADER_LEN as u64,
            actual: len,
        });
    }
    let h: Header = bytemuck::pod_read_unaligned(&head[..HEADER_LEN]);
    if h.byte_order != BYTE_ORDER_MARK {
        return Err(if h.byte_order == BYTE_ORDER_MARK.swap_bytes() {
            CacheError::WrongByteOrder { name }
        } else {
            CacheError::Corrupt {
                name,
                what: format!("byte-order mark {:#010x}", h.byte_order),
            }
        });
    }
    if h.version != VERSION {
        return Err(CacheError::WrongVersion {
            name,
            found: h.version,
            expected: VERSION,
        });
    }
    let computed = header_hash(&h);
    if computed != h.header_hash {
        return Err(CacheError::Checksum {
            name,
            part: "header",
            stored: h.header_hash,
            computed,
        });
    }
    if h.total_len != len {
        return Err(if h.total_len > len {
            CacheError::Truncated {
                name,
                expected: h.total_len,
                actual: len,
            }
        } else {
            CacheError::Corrupt {
                name,
                what: format!("{len} bytes present but the header says {}", h.total_len),
            }
        });
    }
    Ok(h)
}

/// Checks that every index in the arrays is in range and that every tree is a tree of
/// bounded depth, so that queries can neither panic nor loop on a crafted file.
pub(crate) fn validate(v: &View, layout: &Layout) -> Result<(), String> {
    let nodes = v.nodes.len();
    let mut seen = vec![false; nodes];
    let mut triangles = 0u64;
    for (m, r) in v.meshes.iter().enumerate() {
        let range = |start: u32, count: u32, len: usize, what: &str| {
            let end = start as u64 + count as u64;
            if end > len as u64 {
                Err(format!(
                    "mesh {m}: {what} {start}..{end} out of range (there are {len})"
                ))
            } else {
                Ok(start as usize..end as usize)
            }
        };
        let node_range = range(r.node_start, r.node_count, nodes, "nodes")?;
        let block_range = range(r.block_start, r.block_count, v.blocks.len(), "blocks")?;
        let vertex_range = range(
            r.vertex_start,
            r.vertex_count,
            v.positions.len(),
            "vertices",
        )?;
        let index_range = range(
            r.index_start,
            r.triangle_count,
            v.indices.len(),
            "triangles",
        )?;
        for (t, tri) in v.indices[index_range].iter().enumerate() {
            if tri.iter().any(|&i| i as usize >= vertex_range.len()) {
                return Err(format!("mesh {m}: triangle {t} refers to a missing vertex"));
            }
        }
        for (b, block) in v.blocks[block_range.clone()].iter().enumerate() {
            for lane in 0..4 {
                let p = block.prim[lane];
                let pad = p == Tri4::PAD;
                if !pad && p >= r.triangle_count {
                    return Err(format!(
                        "mesh {m}: block {b} names triangle {p} of {}",
                        r.triangle_count
                    ));
                }
                let corners_nan = (0..3).all(|k| (0..3).all(|a| block.v[k][a][lane].is_nan()));
                if pad && !corners_nan {
                    return Err(format!(
                        "mesh {m}: block {b} has a padding lane with corners"
                    ));
                }
            }
        }
        triangles += r.triangle_count as u64;
        if r.root != EMPTY {
            check_tree(v.nodes, r.root, &node_range, &mut seen, &mut |leaf| {
                let (first, count) = leaf_parts(leaf);
                if first < block_range.start || first + count > block_range.end {
                    return Err(format!(
                        "mesh {m}: a leaf refers to blocks outside the mesh"
                    ));
                }
                Ok(())
            })
            .map_err(|e| format!("mesh {m}: {e}"))?;
        }
    }
    let mut world = 0u64;
    for (i, inst) in v.instances.iter().enumerate() {
        let Some(r) = v.meshes.get(inst.mesh as usize) else {
            return Err(format!("instance {i} refers to missing mesh {}", inst.mesh));
        };
        world += r.triangle_count as u64;
    }
    if world != layout.triangle_count {
        return Err(format!(
            "the header counts {} world triangles, the instances {world} ({triangles} stored)",
            layout.triangle_count
        ));
    }
    if layout.tlas_root != EMPTY {
        let tlas = layout.tlas_start as usize..nodes;
        if tlas.start > nodes {
            return Err("the top-level tree starts past the nodes".into());
        }
        let instances = v.instances.len();
        check_tree(v.nodes, layout.tlas_root, &tlas, &mut seen, &mut |leaf| {
            let (first, count) = leaf_parts(leaf);
            if count != 1 || first >= instances {
                return Err(format!("a top-level leaf refers to instance {first}"));
            }
            Ok(())
        })
        .map_err(|e| format!("top-level tree: {e}"))?;
    }
    Ok(())
}

/// Depth-first check of one tree: node indices inside `range`, children after parents, every
/// node reached once, depth at most `MAX_DEPTH`, empty slots with empty boxes.
fn check_tree(
    nodes: &[Node4],
    root: u32,
    range: &Range<usize>,
    seen: &mut [bool],
    leaf: &mut dyn FnMut(u32) -> Result<(), String>,
) -> Result<(), String> {
    let mut stack = vec![(root, 1u32)];
    if !range.contains(&(root as usize)) || root & LEAF != 0 {
        return Err(format!("root {root} is not a node of the tree"));
    }
    while let Some((n, depth)) = stack.pop() {
        let i = n as usize;
        if seen[i] {
            return Err(format!("node {i} is reached twice"));
        }
        seen[i] = true;
        if depth > MAX_DEPTH {
            return Err(format!("deeper than {MAX_DEPTH} levels"));
        }
        let node = &nodes[i];
        for slot in 0..4 {
            let c = node.child[slot];
            if c == EMPTY {
                let (lo, hi) = node.child_bounds(slot);
                let empty = (0..3).all(|a| lo[a] == f32::INFINITY && hi[a] == f32::NEG_INFINITY);
                if !empty {
                    return Err(format!("node {i}: an empty slot with a non-empty box"));
                }
            } else if c & LEAF != 0 {
                leaf(c)?;
            } else if c as usize <= i || !range.contains(&(c as usize)) {
                return Err(format!(
                    "node {i}: child {c} is out of order or out of range"
                ));
            } else {
                stack.push((c, depth + 1));
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all (see [`crate::replace`]), so that a reader
/// never sees a half-written cache.
pub(crate) fn write_file(bytes: &[u8], path: &Path) -> Result<(), CacheError> {
    crate::replace::replace_with_bytes(path, &[bytes]).map_err(|(action, source)| CacheError::Io {
        name: path.display().to_string(),
        action,
        source,
    })
}

/// Maps `path` read-only: a regular file (a FIFO would hang the open, a device has no length
/// to map), whose header is read and checked, its declared length too, before the rest is
/// mapped.
pub(crate) fn map_file(path: &Path) -> Result<Arc<dyn ByteSource>, CacheError> {
    let name = path.display().to_string();
    let failed = |action| {
        let name = name.clone();
        move |source| CacheError::Io {
            name,
            action,
            source,
        }
    };
    let (mut file, len) = crate::regular::open(path).map_err(|e| match e {
        crate::regular::OpenError::Io(source) => failed("open")(source),
        crate::regular::OpenError::NotAFile(kind) => CacheError::NotAFile {
            name: name.clone(),
            kind,
        },
    })?;
    let head = crate::regular::read_head(&mut file, HEADER_LEN).map_err(failed("read"))?;
    check_header(&head, len, &name)?;
    // SAFETY: the mapping is read-only and only ever read through `&[u8]`; everything read
    // from it is validated first. The remaining hazard of any file mapping, another process
    // truncating or rewriting the file while it is mapped, is excluded by contract: caches
    // are replaced by rename (`write_file`), which leaves a mapped old file intact.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| CacheError::Io {
        name,
        action: "memory-map",
        source,
    })?;
    // As for a freshly built geometry (see `AlignedBytes`): only a hint, which the kernel
    // honours for files whose pages it can cache in huge folios.
    #[cfg(target_os = "linux")]
    if map.len() >= HUGE_PAGE {
        let _ = map.advise(memmap2::Advice::HugePage);
    }
    Ok(Arc::new(map))
}

/// How many bytes of the mappings that hold `bytes` are in huge pages (anonymous, shared
/// memory or file pages mapped 2 MiB at a time), from /proc/self/smaps; at most
/// `bytes.len()`. `None` where that file cannot be read (not Linux).
pub(crate) fn huge_page_bytes(bytes: &[u8]) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let (lo, hi) = (
        bytes.as_ptr() as usize,
        bytes.as_ptr() as usize + bytes.len(),
    );
    let mut inside = false;
    let mut kib = 0u64;
    for line in smaps.lines() {
        // A mapping's entry starts with "start-end perms offset …"; its fields follow.
        let range = line.split_once(' ').and_then(|(r, _)| r.split_once('-'));
        if let Some((Ok(start), Ok(end))) =
            range.map(|(a, b)| (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)))
        {
            inside = start < hi && lo < end;
            continue;
        }
        if !inside {
            continue;
        }
        for field in ["AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:"] {
            if let Some(v) = line.strip_prefix(field) {
                kib += v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
    }
    Some((kib * 1024).min(bytes.len() as u64))
}

impl Geometry {
    /// The whole geometry as bytes: what [`Geometry::write_cache`] writes and
    /// [`Geometry::from_bytes`] reads. Copy these into a shared buffer to share a scene.
    pub fn as_bytes(&self) -> &[u8] {
        self.src.bytes()
    }

    /// How much of the geometry's memory is in huge pages (see docs/running-on-clusters.md,
    /// "Huge pages", for when the kernel grants them); `None` where that cannot be read.
    pub fn huge_page_bytes(&self) -> Option<u64> {
        huge_page_bytes(self.as_bytes())
    }

    /// A copy of [`Geometry::as_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    /// Writes the geometry to a cache file (atomically: a temporary file, then a rename).
    pub fn write_cache(&self, path: &Path) -> Result<(), CacheError> {
        write_file(self.as_bytes(), path)
    }

    /// Memory-maps a cache file written by [`Geometry::write_cache`]. Nothing is rebuilt or
    /// copied; the file is checked (checksums and structure) before use.
    pub fn load_cache(path: &Path) -> Result<Geometry, CacheError> {
        let map = map_file(path)?;
        Geometry::from_source(map, &path.display().to_string())
    }

    /// A geometry viewing bytes someone else owns (e.g. a node-shared array), checked as
    /// [`Geometry::load_cache`] checks a file, and not copied.
    pub fn from_bytes(bytes: Arc<dyn ByteSource>) -> Result<Geometry, CacheError> {
        Geometry::from_source(bytes, "in-memory geometry bytes")
    }

    pub(crate) fn from_source(
        src: Arc<dyn ByteSource>,
        name: &str,
    ) -> Result<Geometry, CacheError> {
        let layout = parse(src.bytes(), name, true)?;
        let g = Geometry {
            src,
            layout,
            single: None,
        };
        validate(&g.view(), &g.layout).map_err(|what| CacheError::Corrupt {
            name: name.to_string(),
            what,
        })?;
        Ok(Geometry::from_parts(g.src, g.layout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds are in the header, under its checksum: a file written with (or damaged into)
    /// bounds no build gives passed every check, and `Scene::new` then blamed the scene ("the
    /// scene reaches inf units from the origin") or took an inverted box.
    #[test]
    fn scene_bounds_that_are_no_finite_box_are_damage() {
        let g = Geometry::build(
            vec![crate::mesh::icosphere(1)],
            vec![Instance {
                mesh: 0,
                material: 0,
                transform: crate::math::Transform::IDENTITY,
            }],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.cache");
        let with_bounds = |bounds: [f32; 6]| {
            let mut bytes = g.to_bytes();
            let mut h: Header = bytemuck::pod_read_unaligned(&bytes[..HEADER_LEN]);
            h.bounds = bounds;
            h.header_hash = header_hash(&h);
            bytes[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&h));
            std::fs::write(&path, bytes).unwrap();
            match Geometry::load_cache(&path) {
                Ok(_) => "accepted".to_string(),
                Err(e) => {
                    assert!(e.is_prism_cache(), "{e}");
                    e.to_string()
                }
            }
        };
        let name = path.display();
        let inf = f32::INFINITY;
        assert_eq!(
            with_bounds([-1.0, -1.0, -1.0, inf, 1.0, 1.0]),
            format!("{name}: corrupt: the scene bounds (-1, -1, -1) to (inf, 1, 1) are not finite")
        );
        assert_eq!(
            with_bounds([f32::NAN, -1.0, -1.0, 1.0, 1.0, 1.0]),
            format!("{name}: corrupt: the scene bounds (NaN, -1, -1) to (1, 1, 1) are not finite")
        );
        assert_eq!(
            with_bounds([-1.0, 2.0, -1.0, 1.0, 1.0, 1.0]),
            format!(
                "{name}: corrupt: the scene bounds (-1, 2, -1) to (1, 1, 1) are inverted (a \
                 minimum above its maximum)"
            )
        );
        // A flat box is a box; an empty scene's bounds are both zero.
        assert_eq!(with_bounds([-1.0, 0.5, -1.0, 1.0, 0.5, 1.0]), "accepted");
        let empty = Geometry::build(vec![], vec![]).unwrap();
        assert!(Geometry::from_bytes(Arc::new(empty.to_bytes())).is_ok());
    }

    #[test]
    fn large_buffers_get_their_own_aligned_zeroed_mapping_and_small_ones_the_heap() {
        for (len, mapped) in [
            (HUGE_PAGE - 64, false),
            (HUGE_PAGE, true),
            (3 * HUGE_PAGE + 5, true),
        ] {
            let mut b = AlignedBytes::zeroed(len);
            assert_eq!(b.is_mapped(), mapped, "{len} bytes");
            assert_eq!(b.bytes().len(), len);
            assert_eq!(b.bytes().as_ptr() as usize % SECTION_ALIGN, 0);
            assert!(b.bytes().iter().all(|&x| x == 0));
            let last = len - 1;
            b.bytes_mut()[last] = 7;
            assert_eq!(b.bytes()[last], 7);
        }
    }

    /// The huge pages themselves, where the kernel offers them for the asking: the mapping's
    /// `AnonHugePages` in /proc/self/smaps, unless the kernel reports that it fell back to
    /// small pages (no free 2 MiB of physical memory).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_buffer_is_backed_by_huge_pages_where_the_kernel_offers_them() {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let mode = read("/sys/kernel/mm/transparent_hugepage/enabled");
        if !(mode.contains("[madvise]") || mode.contains("[always]")) {
            eprintln!("transparent huge pages are off here ({mode:?}): nothing to check");
            return;
        }
        let fallbacks = || {
            read("/proc/vmstat")
                .lines()
                .find_map(|l| l.strip_prefix("thp_fault_fallback "))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let before = fallbacks();
        let mut b = AlignedBytes::zeroed(4 * HUGE_PAGE);
        b.bytes_mut().fill(1);
        let huge = huge_page_bytes(b.bytes()).expect("/proc/self/smaps is readable");
        assert!(
            huge >= HUGE_PAGE as u64 || fallbacks() > before,
            "{huge} bytes in huge pages, and the kernel reported no fallback"
        );
    }
}
