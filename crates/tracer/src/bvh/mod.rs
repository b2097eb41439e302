//! The bounding volume hierarchy: a four-wide BVH in plain arrays, and its traversal.
//!
//! A [`Node4`] holds the boxes of up to four children in structure-of-arrays form (one
//! 128-byte record, two cache lines), so that one ray is tested against all four boxes with
//! four-lane vector instructions. A child reference is either the index of another node or,
//! with its top bit (`LEAF`) set, a leaf: a run of up to `MAX_LEAF_BLOCKS` (16) consecutive
//! [`Tri4`](crate::triangle::Tri4) blocks in the bottom level, or an instance in the top level.
//! Nodes refer to each other by index only, so a hierarchy can be written to a file, mapped
//! back and shared between processes as it is.
//!
//! The trees are built as binary trees with the binned surface area heuristic
//! (the `build` module) and then collapsed to four-wide nodes by repeatedly opening the child of
//! largest area. Box tests are made conservative (Ize, "Robust BVH Ray Traversal", JCGT
//! 2013) so that a box never loses a ray that the watertight triangle test would hit.

pub(crate) mod build;
pub(crate) mod simd;

use crate::math::Vec3;
use bytemuck::{Pod, Zeroable};
use simd::F4;

/// Set in a child reference that is a leaf.
pub(crate) const LEAF: u32 = 1 << 31;
/// An unused child slot (its box is empty, so it is never entered).
pub(crate) const EMPTY: u32 = u32::MAX;
/// A leaf reference holds `count - 1` in these bits and its first item below them.
pub(crate) const COUNT_SHIFT: u32 = 27;
/// The first item of a leaf: a block index (bottom level) or an instance index (top level).
pub(crate) const INDEX_MASK: u32 = (1 << COUNT_SHIFT) - 1;
/// The most blocks one leaf may hold.
pub(crate) const MAX_LEAF_BLOCKS: u32 = 1 << (31 - COUNT_SHIFT);
/// The deepest tree accepted; a built tree stays far below it (see `build`), and a loaded one
/// is checked against it.
pub(crate) const MAX_DEPTH: u32 = 96;

/// A leaf reference for `count` items starting at `first`; `None` if it does not fit.
pub(crate) fn leaf_ref(first: usize, count: usize) -> Option<u32> {
    if count == 0 || count > MAX_LEAF_BLOCKS as usize || first + count > INDEX_MASK as usize {
        return None;
    }
    Some(LEAF | (((count - 1) as u32) << COUNT_SHIFT) | first as u32)
}

/// `(first, count)` of a leaf reference.
#[inline(always)]
pub(crate) fn leaf_parts(r: u32) -> (usize, usize) {
    (
        (r & INDEX_MASK) as usize,
        (((r & !LEAF) >> COUNT_SHIFT) + 1) as usize,
    )
}

/// A node of the four-wide BVH.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct Node4 {
    /// `[min x, max x, min y, max y, min z, max z][child]`; an unused slot has min = +inf
    /// and max = -inf.
    pub bounds: [[f32; 4]; 6],
    /// Child references: a node index, a leaf reference, or `EMPTY`.
    pub child: [u32; 4],
    /// Zero; keeps a node at 128 bytes, two cache lines.
    pub reserved: [u32; 4],
}

// Two whole cache lines: the traversal reads both ahead (`simd::prefetch`).
const _: () = assert!(std::mem::size_of::<Node4>() == 128);

impl Node4 {
    pub(crate) const EMPTY: Node4 = Node4 {
        bounds: [
            [f32::INFINITY; 4],
            [f32::NEG_INFINITY; 4],
            [f32::INFINITY; 4],
            [f32::NEG_INFINITY; 4],
            [f32::INFINITY; 4],
            [f32::NEG_INFINITY; 4],
        ],
        child: [EMPTY; 4],
        reserved: [0; 4],
    };

    pub(crate) fn set_child(&mut self, i: usize, lo: Vec3, hi: Vec3, child: u32) {
        for axis in 0..3 {
            self.bounds[2 * axis][i] = lo[axis];
            self.bounds[2 * axis + 1][i] = hi[axis];
        }
        self.child[i] = child;
    }

    /// The box of child slot `i` as `(lo, hi)`.
    pub(crate) fn child_bounds(&self, i: usize) -> (Vec3, Vec3) {
        let b = &self.bounds;
        (
            Vec3::new(b[0][i], b[2][i], b[4][i]),
            Vec3::new(b[1][i], b[3][i], b[5][i]),
        )
    }
}

/// `1 + 2 * gamma(3)` from Ize (2013): widening the far distance by this much makes the
/// slab test conservative against the rounding of `(bound - origin) * inv_dir`.
const ROBUST_FAR: f32 = 1.0 + 2.0 * (3.0 * f32::EPSILON * 0.5) / (1.0 - 3.0 * f32::EPSILON * 0.5);

/// A ray prepared for box tests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RayBox {
    org: [F4; 3],
    inv: [F4; 3],
    /// Index into [`Node4::bounds`] of the near and far plane per axis.
    near: [usize; 3],
    far: [usize; 3],
}

impl RayBox {
    /// `dir` must be finite and non-zero.
    #[inline]
    pub fn new(origin: Vec3, dir: Vec3) -> RayBox {
        // A zero direction component gives an infinite inverse; a ray lying in a slab's
        // plane then produces 0 * inf = NaN for that slab, and `hit4` is arranged so that a
        // NaN slab is ignored (the ray is inside that slab for all t), which is exact.
        let inv = F4::splat(1.0)
            .div(F4::from_array([dir.x, dir.y, dir.z, 1.0]))
            .to_array();
        let near = [
            (inv[0] < 0.0) as usize,
            2 + (inv[1] < 0.0) as usize,
            4 + (inv[2] < 0.0) as usize,
        ];
        RayBox {
            org: origin.to_array().map(F4::splat),
            inv: [inv[0], inv[1], inv[2]].map(F4::splat),
            near,
            far: near.map(|n| n ^ 1),
        }
    }

    /// Which of the four boxes of `node` the ray enters within `[tmin, tmax]` (bit per child)
    /// and the entry distances.
    #[inline(always)]
    pub fn hit4(&self, node: &Node4, tmin: f32, tmax: f32) -> (u32, [f32; 4]) {
        let b = &node.bounds;
        let slab = |axis: usize, plane: usize| {
            F4::from_array(b[plane])
                .sub(self.org[axis])
                .mul(self.inv[axis])
        };
        // SSE min/max return the second operand when either is NaN: with the slab first and
        // the running bound second, a NaN slab (see `new`) leaves the bound unchanged.
        let tn = slab(0, self.near[0])
            .max(slab(1, self.near[1]).max(slab(2, self.near[2]).max(F4::splat(tmin))));
        let tf = slab(0, self.far[0])
            .min(slab(1, self.far[1]).min(slab(2, self.far[2]).min(F4::splat(tmax))))
            .mul(F4::splat(ROBUST_FAR));
        (tn.le(tf).bits(), tn.to_array())
    }
}

/// The traversal stack: 40 entries in place (at most three are pushed per level, and the
/// trees built here are about a dozen levels deep for a million triangles), spilling to the
/// heap only for deeper trees. Small, because it is initialised for every ray.
pub(crate) struct Stack {
    inline: [(u32, f32); 40],
    len: usize,
    spill: Vec<(u32, f32)>,
}

impl Stack {
    #[inline]
    pub fn new() -> Stack {
        Stack {
            inline: [(0, 0.0); 40],
            len: 0,
            spill: Vec::new(),
        }
    }
    #[inline(always)]
    fn push(&mut self, e: (u32, f32)) {
        if self.len < self.inline.len() {
            self.inline[self.len] = e;
        } else {
            self.spill.push(e);
        }
        self.len += 1;
    }
    #[inline(always)]
    fn pop(&mut self) -> (u32, f32) {
        self.len -= 1;
        if self.len < self.inline.len() {
            self.inline[self.len]
        } else {
            self.spill.pop().unwrap_or((EMPTY, f32::INFINITY))
        }
    }
}

/// Walks the tree below `root`, calling `leaf(leaf_ref, tmax, stack)` for every leaf whose box
/// the ray enters before `*tmax`. The callback may shrink `*tmax` (a closer hit) and returns
/// `true` to stop (an occlusion query found something); then `traverse` returns `true`.
/// Children are visited front to back.
#[inline(always)]
pub(crate) fn traverse(
    nodes: &[Node4],
    root: u32,
    ray: &RayBox,
    tmin: f32,
    tmax: &mut f32,
    stack: &mut Stack,
    mut leaf: impl FnMut(u32, &mut f32, &mut Stack) -> bool,
) -> bool {
    // When a ray enters several children, the nodes among them are fetched into the cache
    // while the first is worked on: on meshes larger than the caches most node visits are
    // misses, and this overlaps them (1.1-1.3x on incoherent rays over 1.3M triangles; reading
    // leaves ahead too gained nothing measurable).
    let ahead = |c: u32| {
        if c & LEAF == 0 {
            simd::prefetch(&nodes[c as usize]);
        }
    };
    let base = stack.len;
    let mut cur = root;
    'walk: loop {
        if cur & LEAF != 0 {
            if leaf(cur, tmax, stack) {
                while stack.len > base {
                    stack.pop();
                }
                return true;
            }
        } else {
            let node = &nodes[cur as usize];
            let (mut mask, tn) = ray.hit4(node, tmin, *tmax);
            if mask != 0 {
                let first = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if mask == 0 {
                    cur = node.child[first];
                    continue 'walk;
                }
                // Insertion sort of up to four (distance, child) pairs, nearest first. Both
                // queries go front to back: an occlusion query, too, ends sooner when the near
                // side is searched first (1.1-1.3x on camera rays against unordered visits).
                let mut order = [(0.0f32, 0u32); 4];
                order[0] = (tn[first], node.child[first]);
                ahead(order[0].1);
                let mut n = 1;
                while mask != 0 {
                    let i = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let e = (tn[i], node.child[i]);
                    ahead(e.1);
                    let mut j = n;
                    while j > 0 && order[j - 1].0 > e.0 {
                        order[j] = order[j - 1];
                        j -= 1;
                    }
                    order[j] = e;
                    n += 1;
                }
                for &(d, c) in order[1..n].iter().rev() {
                    stack.push((c, d));
                }
                cur = order[0].1;
                continue 'walk;
            }
        }
        loop {
            if stack.len == base {
                return false;
            }
            let (c, d) = stack.pop();
            if d <= *tmax {
                cur = c;
                continue 'walk;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_references_round_trip_and_refuse_what_does_not_fit() {
        let r = leaf_ref(12345, 3).unwrap();
        assert!(r & LEAF != 0);
        assert_eq!(leaf_parts(r), (12345, 3));
        assert_eq!(leaf_parts(leaf_ref(0, 16).unwrap()), (0, 16));
        assert!(leaf_ref(0, 17).is_none());
        assert!(leaf_ref(0, 0).is_none());
        assert!(leaf_ref(INDEX_MASK as usize, 1).is_none());
    }

    #[test]
    fn box_test_is_conservative_and_empty_slots_never_hit() {
        let mut n = Node4::EMPTY;
        n.set_child(0, Vec3::new(0.0, 0.0, 0.0), Vec3::new(1.0, 1.0, 1.0), 7);
        // A flat box (zero thickness in z) is still entered by a ray along its plane.
        n.set_child(1, Vec3::new(2.0, 0.0, 0.0), Vec3::new(3.0, 1.0, 0.0), 8);
        let cases = [
            (Vec3::new(0.5, 0.5, -1.0), Vec3::new(0.0, 0.0, 1.0), 0b01),
            (Vec3::new(2.5, 0.5, -1.0), Vec3::new(0.0, 0.0, 1.0), 0b10),
            (Vec3::new(-1.0, 0.5, 0.0), Vec3::new(1.0, 0.0, 0.0), 0b11),
            (Vec3::new(-1.0, 0.5, 0.0), Vec3::new(-1.0, 0.0, 0.0), 0b00),
            (Vec3::new(0.0, 0.0, -5.0), Vec3::new(0.0, 0.0, 1.0), 0b01),
            (Vec3::new(5.0, 5.0, 5.0), Vec3::new(-1.0, -1.0, -1.0), 0b01),
        ];
        for (o, d, want) in cases {
            let (mask, tn) = RayBox::new(o, d).hit4(&n, 0.0, f32::INFINITY);
            assert_eq!(mask, want, "{o:?} {d:?}");
            assert!(tn.iter().all(|t| !t.is_nan()));
        }
        // tmax before the box: no hit.
        let (mask, _) =
            RayBox::new(Vec3::new(0.5, 0.5, -1.0), Vec3::new(0.0, 0.0, 1.0)).hit4(&n, 0.0, 0.5);
        assert_eq!(mask, 0);
    }
}
