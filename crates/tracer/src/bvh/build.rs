//! Parallel binned-SAH construction of a binary BVH, and its collapse to four-wide nodes.
//!
//! The binary build is top-down: at each node the primitives' centroids are sorted into
//! [`BINS`] bins on each axis, the split with the lowest surface area heuristic cost is taken,
//! and the two halves are built in parallel with `rayon::join`. Large nodes also bin and bound
//! their primitives in parallel chunks. Every node gets a fixed slot range (a subtree over `n`
//! primitives owns `2n - 1` slots), so the parallel halves write disjoint slices and the result
//! does not depend on scheduling: the same input always gives the same tree.

use super::simd::F4;
use super::{Node4, LEAF};
use crate::math::Vec3;
use rayon::prelude::*;

/// Bins per axis (Embree's binned builder uses 32 too).
const BINS: usize = 32;
/// Below this many primitives a node is built on the calling thread.
const PARALLEL_SUBTREE: usize = 4096;
/// Above this many primitives a node's bounds and bins are computed in parallel chunks.
const PARALLEL_NODE: usize = 64 * 1024;
const CHUNK: usize = 16 * 1024;
/// Past this depth nodes are split at the median, which bounds the depth by
/// `MEDIAN_DEPTH + log2(n)` whatever the input (e.g. many coincident triangles).
const MEDIAN_DEPTH: u32 = 48;

/// An axis-aligned box.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Aabb {
    pub lo: [f32; 3],
    pub hi: [f32; 3],
}

impl Aabb {
    pub const EMPTY: Aabb = Aabb {
        lo: [f32::INFINITY; 3],
        hi: [f32::NEG_INFINITY; 3],
    };

    pub fn of_points(points: &[Vec3]) -> Aabb {
        let mut b = Aabb::EMPTY;
        for p in points {
            b.grow_point(*p);
        }
        b
    }
    #[inline]
    pub fn grow_point(&mut self, p: Vec3) {
        for a in 0..3 {
            self.lo[a] = self.lo[a].min(p[a]);
            self.hi[a] = self.hi[a].max(p[a]);
        }
    }
    #[inline]
    pub fn grow(&mut self, o: &Aabb) {
        for a in 0..3 {
            self.lo[a] = self.lo[a].min(o.lo[a]);
            self.hi[a] = self.hi[a].max(o.hi[a]);
        }
    }
    pub fn is_empty(&self) -> bool {
        (0..3).any(|a| self.lo[a] > self.hi[a] || self.lo[a].is_nan() || self.hi[a].is_nan())
    }
    /// Half the surface area; zero for an empty box.
    #[inline]
    pub fn half_area(&self) -> f32 {
        if self.is_empty() {
            return 0.0;
        }
        let d = [0, 1, 2].map(|a| self.hi[a] - self.lo[a]);
        d[0] * d[1] + d[1] * d[2] + d[2] * d[0]
    }
    pub fn lo_vec(&self) -> Vec3 {
        Vec3::from_array(self.lo)
    }
    pub fn hi_vec(&self) -> Vec3 {
        Vec3::from_array(self.hi)
    }
}

/// How leaves are costed and sized.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BuildParams {
    /// Nodes with more primitives are always split.
    pub max_leaf: usize,
    /// Primitives are tested this many at a time (4 for `Tri4` leaves, 1 for instances), so a
    /// leaf of `n` costs `ceil(n / lanes)` tests. A power of two.
    pub lanes: usize,
    /// The cost of a binary traversal step relative to one leaf test.
    pub traversal_cost: f32,
}

/// A binary BVH node. `count == 0`: an inner node whose left child is the next slot and whose
/// right child is slot `right`. Otherwise a leaf over `order[start..start + count]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BinNode {
    pub bounds: Aabb,
    pub right: u32,
    pub start: u32,
    pub count: u32,
}

impl Default for BinNode {
    fn default() -> Self {
        BinNode {
            bounds: Aabb::EMPTY,
            right: 0,
            start: 0,
            count: 0,
        }
    }
}

/// A binary BVH: root in slot 0; `order` lists primitive indices in leaf order.
pub(crate) struct BinaryBvh {
    pub nodes: Vec<BinNode>,
    pub order: Vec<u32>,
}

/// Builds a binary BVH over the given primitive boxes (at least one, all finite).
pub(crate) fn build_binary(prims: &[Aabb], params: BuildParams) -> BinaryBvh {
    assert!(!prims.is_empty() && prims.len() < ID_LIMIT);
    let mut refs: Vec<PrimRef> = prims
        .par_iter()
        .enumerate()
        .map(|(i, b)| PrimRef {
            lo: [b.lo[0], b.lo[1], b.lo[2], f32::from_bits(ID_TAG + i as u32)],
            hi: [b.hi[0], b.hi[1], b.hi[2], 0.0],
        })
        .collect();
    let (bounds, centroids) = bounds_of(&refs);
    let mut nodes = vec![BinNode::default(); 2 * prims.len() - 1];
    assert!(params.lanes.is_power_of_two());
    let ctx = Ctx {
        params,
        lane_shift: params.lanes.trailing_zeros(),
    };
    ctx.build(
        &mut nodes,
        0,
        Task {
            refs: &mut refs,
            bounds,
            centroids,
            start: 0,
            depth: 0,
        },
    );
    BinaryBvh {
        nodes,
        order: refs.par_iter().map(PrimRef::id).collect(),
    }
}

/// A primitive's index is kept in lane 3 of [`PrimRef::lo`] as the bits `ID_TAG + index`:
/// a normal (or infinite) float, never a denormal, whose arithmetic would be slow.
const ID_TAG: u32 = 0x4000_0000;
const ID_LIMIT: usize = 0x7F80_0000 - ID_TAG as usize;

/// A primitive's box and index, moved around (not referred to) during the build so that
/// every pass reads memory sequentially. The box arithmetic below carries lane 3 (the index)
/// along and ignores it.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct PrimRef {
    lo: [f32; 4],
    hi: [f32; 4],
}

impl PrimRef {
    #[inline(always)]
    fn id(&self) -> u32 {
        self.lo[3].to_bits() - ID_TAG
    }
    #[inline(always)]
    fn lo4(&self) -> F4 {
        F4::from_array(self.lo)
    }
    #[inline(always)]
    fn hi4(&self) -> F4 {
        F4::from_array(self.hi)
    }
    /// Twice the centroid (lanes 0..3).
    #[inline(always)]
    fn centroid2(&self) -> F4 {
        self.lo4().add(self.hi4())
    }
}

/// A box in four-lane form (lane 3 unused).
#[derive(Clone, Copy, Debug)]
struct Box4 {
    lo: F4,
    hi: F4,
}

impl Box4 {
    #[inline(always)]
    fn empty() -> Box4 {
        Box4 {
            lo: F4::splat(f32::INFINITY),
            hi: F4::splat(f32::NEG_INFINITY),
        }
    }
    #[inline(always)]
    fn grow(&mut self, lo: F4, hi: F4) {
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
    }
    #[inline(always)]
    fn union(mut self, o: &Box4) -> Box4 {
        self.grow(o.lo, o.hi);
        self
    }
    /// Half the surface area of a non-empty box.
    #[inline(always)]
    fn half_area(&self) -> f32 {
        let d = self.hi.sub(self.lo).to_array();
        d[0] * d[1] + d[1] * d[2] + d[2] * d[0]
    }
    fn aabb(&self) -> Aabb {
        let (lo, hi) = (self.lo.to_array(), self.hi.to_array());
        Aabb {
            lo: [lo[0], lo[1], lo[2]],
            hi: [hi[0], hi[1], hi[2]],
        }
    }
}

/// Bounds of the references and of their (doubled) centroids.
fn bounds_of(refs: &[PrimRef]) -> (Box4, Box4) {
    let f = |ch: &[PrimRef]| {
        let (mut b, mut c) = (Box4::empty(), Box4::empty());
        for r in ch {
            b.grow(r.lo4(), r.hi4());
            let c2 = r.centroid2();
            c.grow(c2, c2);
        }
        (b, c)
    };
    if refs.len() > PARALLEL_NODE {
        refs.par_chunks(CHUNK).map(f).reduce(
            || (Box4::empty(), Box4::empty()),
            |x, y| (x.0.union(&y.0), x.1.union(&y.1)),
        )
    } else {
        f(refs)
    }
}

struct Ctx {
    params: BuildParams,
    lane_shift: u32,
}

/// One node to build: its references (contiguous), their bounds, where they start in the
/// final order, and the node's depth.
struct Task<'a> {
    refs: &'a mut [PrimRef],
    bounds: Box4,
    centroids: Box4,
    start: usize,
    depth: u32,
}

/// Per-axis bins: boxes and counts.
#[derive(Clone, Copy)]
struct Bins {
    boxes: [[Box4; BINS]; 3],
    counts: [[u32; BINS]; 3],
}

impl Bins {
    fn new() -> Bins {
        Bins {
            boxes: [[Box4::empty(); BINS]; 3],
            counts: [[0; BINS]; 3],
        }
    }
    fn merge(mut self, o: &Bins) -> Bins {
        for a in 0..3 {
            for b in 0..BINS {
                self.boxes[a][b] = self.boxes[a][b].union(&o.boxes[a][b]);
                self.counts[a][b] += o.counts[a][b];
            }
        }
        self
    }
}

/// Below this many primitives a node's split is found exactly (sorting on each axis) rather
/// than by binning: cheaper for small nodes, and the best split rather than an approximation.
const EXACT: usize = 16;

enum Split {
    /// Primitives whose centroid falls in a bin below `bin` on `axis` go left.
    Binned {
        axis: usize,
        bin: usize,
        binning: Binning,
    },
    /// The first `count` primitives in centroid order on `axis` go left.
    Sorted { axis: usize, count: usize },
}

/// The binning of a node's centroids: bin = floor((c - lo) * scale), per axis.
#[derive(Clone, Copy)]
struct Binning {
    lo: F4,
    scale: F4,
    bins: usize,
}

impl Binning {
    /// The bins of a reference on the three axes.
    #[inline(always)]
    fn bins(&self, r: &PrimRef) -> [usize; 3] {
        let x = r.centroid2().sub(self.lo).mul(self.scale).to_array();
        // `as` saturates (NaN to 0), so these are always valid bins.
        [0, 1, 2].map(|a| (x[a] as usize).min(self.bins - 1))
    }
    /// The bin of a reference on one axis.
    #[inline(always)]
    fn bin_on(&self, r: &PrimRef, a: usize) -> usize {
        let x = (r.lo[a] + r.hi[a] - self.lo.to_array()[a]) * self.scale.to_array()[a];
        (x as usize).min(self.bins - 1)
    }
}

impl Ctx {
    #[inline(always)]
    fn leaf_cost(&self, n: usize) -> f32 {
        // A shift, not a division: this runs for every candidate split.
        ((n + (1 << self.lane_shift) - 1) >> self.lane_shift) as f32
    }

    fn bin_all(&self, refs: &[PrimRef], binning: &Binning) -> Bins {
        let f = |ch: &[PrimRef]| {
            let mut bins = Bins::new();
            for r in ch {
                let (lo, hi) = (r.lo4(), r.hi4());
                for (a, b) in binning.bins(r).into_iter().enumerate() {
                    bins.boxes[a][b].grow(lo, hi);
                    bins.counts[a][b] += 1;
                }
            }
            bins
        };
        if refs.len() > PARALLEL_NODE {
            refs.par_chunks(CHUNK)
                .map(f)
                .reduce(Bins::new, |x, y| x.merge(&y))
        } else {
            f(refs)
        }
    }

    /// The cheapest split and its SAH cost (areas times leaf costs, not yet divided by the
    /// node's area), if the centroids spread.
    fn find_split(&self, refs: &mut [PrimRef], centroids: &Box4) -> Option<(Split, f32)> {
        let extent = centroids.hi.sub(centroids.lo).to_array();
        let spread: Vec<usize> = (0..3)
            .filter(|&a| extent[a] > 0.0 && extent[a].is_finite())
            .collect();
        if spread.is_empty() {
            return None;
        }
        if refs.len() <= EXACT {
            return self.find_exact_split(refs, &spread);
        }
        let nbins = if refs.len() >= 256 { BINS } else { BINS / 2 };
        let mut scale = [0.0f32; 4];
        for &a in &spread {
            scale[a] = nbins as f32 * (1.0 - 1e-6) / extent[a];
        }
        let binning = Binning {
            lo: centroids.lo,
            scale: F4::from_array(scale),
            bins: nbins,
        };
        let bins = self.bin_all(refs, &binning);
        let mut best: Option<(Split, f32)> = None;
        for &a in &spread {
            let (boxes, counts) = (&bins.boxes[a][..nbins], &bins.counts[a][..nbins]);
            // Right-to-left sweep: cost of the right side for a split before bin i.
            let mut right_cost = [f32::INFINITY; BINS];
            let (mut acc, mut count) = (Box4::empty(), 0usize);
            for i in (1..nbins).rev() {
                acc = acc.union(&boxes[i]);
                count += counts[i] as usize;
                if count > 0 {
                    right_cost[i] = acc.half_area() * self.leaf_cost(count);
                }
            }
            let (mut acc, mut count) = (Box4::empty(), 0usize);
            for i in 0..nbins - 1 {
                acc = acc.union(&boxes[i]);
                count += counts[i] as usize;
                if count == 0 {
                    continue;
                }
                let cost = acc.half_area() * self.leaf_cost(count) + right_cost[i + 1];
                if cost.is_finite() && best.as_ref().is_none_or(|b| cost < b.1) {
                    let split = Split::Binned {
                        axis: a,
                        bin: i + 1,
                        binning,
                    };
                    best = Some((split, cost));
                }
            }
        }
        best
    }

    /// Exact SAH over all `n - 1` split positions of the centroid order on each axis.
    fn find_exact_split(&self, refs: &mut [PrimRef], axes: &[usize]) -> Option<(Split, f32)> {
        let n = refs.len();
        let mut best: Option<(Split, f32)> = None;
        for &a in axes {
            sort_on_axis(refs, a);
            let mut left = [0.0f32; EXACT];
            let mut acc = Box4::empty();
            for i in 0..n - 1 {
                acc.grow(refs[i].lo4(), refs[i].hi4());
                left[i + 1] = acc.half_area() * self.leaf_cost(i + 1);
            }
            let mut acc = Box4::empty();
            for i in (1..n).rev() {
                acc.grow(refs[i].lo4(), refs[i].hi4());
                let cost = left[i] + acc.half_area() * self.leaf_cost(n - i);
                if cost.is_finite() && best.as_ref().is_none_or(|b| cost < b.1) {
                    best = Some((Split::Sorted { axis: a, count: i }, cost));
                }
            }
        }
        best
    }

    fn build(&self, slots: &mut [BinNode], slot0: usize, task: Task) {
        let Task {
            refs,
            bounds,
            centroids,
            start,
            depth,
        } = task;
        let n = refs.len();
        let leaf = BinNode {
            bounds: bounds.aabb(),
            right: 0,
            start: start as u32,
            count: n as u32,
        };
        if n == 1 {
            slots[0] = leaf;
            return;
        }
        let split = if depth < MEDIAN_DEPTH {
            self.find_split(refs, &centroids)
        } else {
            None
        };
        let area = bounds.half_area();
        let split_cost = match &split {
            Some((_, cost)) if area > 0.0 => self.params.traversal_cost + cost / area,
            _ => f32::INFINITY,
        };
        if n <= self.params.max_leaf && self.leaf_cost(n) <= split_cost {
            slots[0] = leaf;
            return;
        }
        let parts = match split {
            Some((Split::Binned { axis, bin, binning }, _)) => {
                Some(partition(refs, |r| binning.bin_on(r, axis) < bin))
            }
            Some((Split::Sorted { axis, count }, _)) => {
                sort_on_axis(refs, axis);
                let (l, r) = refs.split_at(count);
                Some((count, bounds_of(l), bounds_of(r)))
            }
            None => None,
        };
        let (mid, lb, rb) = parts.filter(|p| p.0 > 0 && p.0 < n).unwrap_or_else(|| {
            // The centroids do not spread (or the depth limit is reached): split in the
            // middle along the widest centroid axis, which always makes progress.
            let e = centroids.hi.sub(centroids.lo).to_array();
            let axis = (0..3).max_by(|&a, &b| e[a].total_cmp(&e[b])).unwrap_or(0);
            refs.select_nth_unstable_by(n / 2, |x, y| centroid_order(x, y, axis));
            let (l, r) = refs.split_at(n / 2);
            (n / 2, bounds_of(l), bounds_of(r))
        });
        let (head, rest) = slots.split_first_mut().expect("2n - 1 >= 1 slots");
        let (left_slots, right_slots) = rest.split_at_mut(2 * mid - 1);
        *head = BinNode {
            bounds: bounds.aabb(),
            right: (slot0 + 2 * mid) as u32,
            start: 0,
            count: 0,
        };
        let (left_refs, right_refs) = refs.split_at_mut(mid);
        let left = Task {
            refs: left_refs,
            bounds: lb.0,
            centroids: lb.1,
            start,
            depth: depth + 1,
        };
        let right = Task {
            refs: right_refs,
            bounds: rb.0,
            centroids: rb.1,
            start: start + mid,
            depth: depth + 1,
        };
        let (ls, rs) = (slot0 + 1, slot0 + 2 * mid);
        if n > PARALLEL_SUBTREE {
            rayon::join(
                || self.build(left_slots, ls, left),
                || self.build(right_slots, rs, right),
            );
        } else {
            self.build(left_slots, ls, left);
            self.build(right_slots, rs, right);
        }
    }
}

/// Centroid order on `axis`, ties broken by primitive index so that the order is total and
/// the build deterministic.
fn centroid_order(x: &PrimRef, y: &PrimRef, axis: usize) -> std::cmp::Ordering {
    let (cx, cy) = (x.lo[axis] + x.hi[axis], y.lo[axis] + y.hi[axis]);
    cx.total_cmp(&cy).then(x.id().cmp(&y.id()))
}

fn sort_on_axis(refs: &mut [PrimRef], axis: usize) {
    // Insertion sort: the slices sorted here have at most `EXACT` elements.
    for i in 1..refs.len() {
        let mut j = i;
        while j > 0 && centroid_order(&refs[j - 1], &refs[j], axis).is_gt() {
            refs.swap(j - 1, j);
            j -= 1;
        }
    }
}

type Sides = (usize, (Box4, Box4), (Box4, Box4));

/// Moves the references for which `left` holds to the front; returns how many there are and
/// the bounds (box, centroid box) of both sides, gathered on the way.
fn partition(refs: &mut [PrimRef], left: impl Fn(&PrimRef) -> bool) -> Sides {
    let (mut lb, mut lc) = (Box4::empty(), Box4::empty());
    let (mut rb, mut rc) = (Box4::empty(), Box4::empty());
    let (mut i, mut j) = (0, refs.len());
    while i < j {
        let r = refs[i];
        let c = r.centroid2();
        if left(&r) {
            lb.grow(r.lo4(), r.hi4());
            lc.grow(c, c);
            i += 1;
        } else {
            rb.grow(r.lo4(), r.hi4());
            rc.grow(c, c);
            j -= 1;
            refs.swap(i, j);
        }
    }
    (i, (lb, lc), (rb, rc))
}

/// Collapses a binary BVH into four-wide nodes (root at index 0, every node before its
/// children). `leaf(range)` is called for each leaf, in depth-first order, with the range of
/// `bvh.order` holding its primitives, and returns its child reference (with [`LEAF`] set),
/// or an error.
pub(crate) fn collapse<E>(
    bvh: &BinaryBvh,
    mut leaf: impl FnMut(std::ops::Range<usize>) -> Result<u32, E>,
) -> Result<Vec<Node4>, E> {
    let mut nodes = Vec::with_capacity(bvh.nodes.len() / 2 + 1);
    emit(bvh, 0, &mut nodes, &mut leaf)?;
    Ok(nodes)
}

fn emit<E>(
    bvh: &BinaryBvh,
    b: usize,
    nodes: &mut Vec<Node4>,
    leaf: &mut impl FnMut(std::ops::Range<usize>) -> Result<u32, E>,
) -> Result<u32, E> {
    let me = nodes.len();
    nodes.push(Node4::EMPTY);
    let bn = &bvh.nodes;
    let is_inner = |i: usize| bn[i].count == 0;
    let mut kids = [0usize; 4];
    let mut k = 1;
    kids[0] = b;
    // Open the inner child of largest area until there are four children.
    while k < 4 {
        let widest = (0..k).filter(|&i| is_inner(kids[i])).max_by(|&x, &y| {
            bn[kids[x]]
                .bounds
                .half_area()
                .total_cmp(&bn[kids[y]].bounds.half_area())
        });
        let Some(w) = widest else { break };
        let node = kids[w];
        kids[w] = node + 1;
        kids[k] = bn[node].right as usize;
        k += 1;
    }
    let mut out = Node4::EMPTY;
    for (slot, &kid) in kids[..k].iter().enumerate() {
        let n = &bn[kid];
        let child = if is_inner(kid) {
            emit(bvh, kid, nodes, leaf)?
        } else {
            let r = leaf(n.start as usize..(n.start + n.count) as usize)?;
            debug_assert!(r & LEAF != 0);
            r
        };
        out.set_child(slot, n.bounds.lo_vec(), n.bounds.hi_vec(), child);
    }
    nodes[me] = out;
    Ok(me as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(n: usize) -> Vec<Aabb> {
        let mut s = 7u64;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                let x = (s >> 40) as f32 / 16777216.0 * 100.0;
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                let y = (s >> 40) as f32 / 16777216.0 * 100.0;
                Aabb {
                    lo: [x, y, 0.0],
                    hi: [x + 1.0, y + 1.0, 1.0],
                }
            })
            .collect()
    }

    fn check(bvh: &BinaryBvh, prims: &[Aabb], slot: usize, seen: &mut [bool]) -> Aabb {
        let n = &bvh.nodes[slot];
        let got = if n.count == 0 {
            let mut l = check(bvh, prims, slot + 1, seen);
            l.grow(&check(bvh, prims, n.right as usize, seen));
            l
        } else {
            let mut b = Aabb::EMPTY;
            for &p in &bvh.order[n.start as usize..(n.start + n.count) as usize] {
                assert!(!seen[p as usize], "primitive {p} in two leaves");
                seen[p as usize] = true;
                b.grow(&prims[p as usize]);
            }
            b
        };
        assert_eq!(got, n.bounds, "node {slot} bounds are not tight");
        got
    }

    #[test]
    fn every_primitive_lands_in_exactly_one_leaf_under_tight_bounds() {
        for n in [1, 2, 5, 100, 70_000] {
            let prims = boxes(n);
            let params = BuildParams {
                max_leaf: 8,
                lanes: 4,
                traversal_cost: 1.0,
            };
            let bvh = build_binary(&prims, params);
            let mut seen = vec![false; n];
            check(&bvh, &prims, 0, &mut seen);
            assert!(seen.iter().all(|&s| s));
            // Deterministic whatever the thread schedule.
            let again = build_binary(&prims, params);
            assert_eq!(bvh.order, again.order);
        }
    }

    #[test]
    fn coincident_primitives_still_give_a_shallow_tree() {
        let prims = vec![
            Aabb {
                lo: [1.0; 3],
                hi: [2.0; 3]
            };
            10_000
        ];
        let params = BuildParams {
            max_leaf: 1,
            lanes: 1,
            traversal_cost: 1.0,
        };
        let bvh = build_binary(&prims, params);
        fn depth(b: &BinaryBvh, s: usize) -> usize {
            let n = &b.nodes[s];
            if n.count > 0 {
                1
            } else {
                1 + depth(b, s + 1).max(depth(b, n.right as usize))
            }
        }
        assert!(depth(&bvh, 0) <= 16, "depth {}", depth(&bvh, 0));
        let mut seen = vec![false; prims.len()];
        check(&bvh, &prims, 0, &mut seen);
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn collapse_keeps_all_leaves_and_puts_parents_first() {
        let prims = boxes(1000);
        let bvh = build_binary(
            &prims,
            BuildParams {
                max_leaf: 1,
                lanes: 1,
                traversal_cost: 1.0,
            },
        );
        let mut leaves = Vec::new();
        let nodes = collapse::<()>(&bvh, |r| {
            let p = &bvh.order[r];
            leaves.extend_from_slice(p);
            Ok(LEAF | p[0])
        })
        .unwrap();
        leaves.sort_unstable();
        assert_eq!(leaves, (0..1000).collect::<Vec<u32>>());
        for (i, n) in nodes.iter().enumerate() {
            for &c in &n.child {
                if c & LEAF == 0 {
                    assert!(c as usize > i && (c as usize) < nodes.len());
                }
            }
        }
        // Four-wide: far fewer nodes than the binary tree's 999 inner nodes.
        assert!(nodes.len() < 500, "{} nodes", nodes.len());
    }
}
