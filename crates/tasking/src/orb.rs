//! Domain decomposition by orthogonal recursive bisection (ORB), as in Yade's `mpy`.
//!
//! A point set is cut into `N` subdomains, any `N >= 1`: the set's bounding box is bisected
//! across its longest axis at the (weighted) median, the lower part going to `floor(N/2)`
//! subdomains and the upper to `ceil(N/2)` with a share of the points proportional to the
//! number of subdomains, and each part is cut again the same way. Without weights every
//! subdomain gets `floor(len/N)` or `ceil(len/N)` points.
//!
//! `N` may exceed the number of points (some subdomains are then empty), up to
//! [`MAX_EMPTY_PARTS`] or the number of points, whichever is larger. Coordinates may be any
//! finite values (cut planes between points never overflow), and weights any finite
//! non-negative values: they are rescaled so their sums cannot overflow, and where a set of
//! points weighs nothing in total (all-zero weights) its points are shared out as if their
//! weights were equal. Where several weighted cuts balance the weight equally well (zero
//! weights next to the cut), the one nearest an even split of the counts is taken, so no part
//! is left empty that need not be.
//!
//! Every point lies in its own subdomain's region (lower bounds inclusive, upper exclusive),
//! except where equal coordinates had to be split between two sides to keep the counts (or
//! weights) balanced: those on the lower side lie on their region's upper face.

use std::cmp::Ordering;

/// The most subdomains a decomposition may have beyond the number of points.
pub const MAX_EMPTY_PARTS: usize = 1 << 16;

/// Why a decomposition was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrbError {
    /// Zero subdomains were asked for.
    #[error("ORB needs at least one subdomain, got 0")]
    NoParts,
    /// The points have no coordinates (`D = 0`): there is no axis to cut across.
    #[error("ORB needs points with at least one coordinate, got 0-dimensional points")]
    NoAxes,
    /// More subdomains than points and than [`MAX_EMPTY_PARTS`] were asked for.
    #[error(
        "ORB asked for {parts} subdomains of {points} points (at most the number of points or \
         {MAX_EMPTY_PARTS}, whichever is larger)"
    )]
    TooManyParts {
        /// Subdomains asked for.
        parts: usize,
        /// Points given.
        points: usize,
    },
    /// A coordinate was NaN or infinite.
    #[error("ORB point {index} has a non-finite coordinate on axis {axis}")]
    NonFinite {
        /// Index of the offending point.
        index: usize,
        /// Axis of the offending coordinate.
        axis: usize,
    },
    /// A weight was negative, NaN or infinite, or the weights' count did not match.
    #[error("ORB weights invalid: {0}")]
    BadWeights(String),
    /// A subdomain handed to [`assignment`] holds a point index beyond the number of points.
    #[error(
        "ORB subdomain {subdomain} holds point {index}, but the assignment is for {num_points} \
         points"
    )]
    PointOutOfRange {
        /// The subdomain holding the index.
        subdomain: usize,
        /// The out-of-range point index.
        index: usize,
        /// The number of points given.
        num_points: usize,
    },
}

/// One subdomain: the points it holds and the box of cut planes around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subdomain<const D: usize> {
    /// Indices into the input point slice, in increasing order.
    pub indices: Vec<usize>,
    /// Lower corner of the subdomain's region (`-inf` on sides that were never cut).
    pub lo: [f64; D],
    /// Upper corner of the subdomain's region (`+inf` on sides that were never cut).
    pub hi: [f64; D],
}

impl<const D: usize> Subdomain<D> {
    /// True if `p` lies in the subdomain's region (lower bounds inclusive, upper exclusive).
    /// Points exactly on a cut plane may be assigned to either side by the median split when
    /// points on both sides share that coordinate (see the module documentation).
    pub fn region_contains(&self, p: &[f64; D]) -> bool {
        (0..D).all(|a| p[a] >= self.lo[a] && p[a] < self.hi[a])
    }
}

/// Splits `points` into `parts` subdomains of equal counts (differing by at most one).
///
/// ```
/// use prism_tasking::orb::orb;
/// let points: Vec<[f64; 3]> = (0..100).map(|i| [i as f64, (i % 7) as f64, 0.0]).collect();
/// let parts = orb(&points, 6).unwrap();
/// assert_eq!(parts.len(), 6);
/// assert!(parts.iter().all(|p| p.indices.len() == 16 || p.indices.len() == 17));
/// ```
pub fn orb<const D: usize>(
    points: &[[f64; D]],
    parts: usize,
) -> Result<Vec<Subdomain<D>>, OrbError> {
    decompose(points, None, parts)
}

/// Splits `points` into `parts` subdomains of about equal total weight (a point's weight
/// being e.g. its expected cost). Each cut falls at the weighted median; a subdomain may end
/// up empty if a few points carry most of the weight.
pub fn orb_weighted<const D: usize>(
    points: &[[f64; D]],
    weights: &[f64],
    parts: usize,
) -> Result<Vec<Subdomain<D>>, OrbError> {
    if weights.len() != points.len() {
        return Err(OrbError::BadWeights(format!(
            "{} weights for {} points",
            weights.len(),
            points.len()
        )));
    }
    if let Some(i) = weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
        return Err(OrbError::BadWeights(format!(
            "weight {i} is {} (must be finite and >= 0)",
            weights[i]
        )));
    }
    decompose(points, Some(weights), parts)
}

/// The subdomain of every point (`assignment[i]` = subdomain holding point `i`;
/// `usize::MAX` for a point no subdomain holds). A subdomain holding an index of
/// `num_points` or more (subdomains of another, larger point set) is refused.
pub fn assignment<const D: usize>(
    subdomains: &[Subdomain<D>],
    num_points: usize,
) -> Result<Vec<usize>, OrbError> {
    let mut out = vec![usize::MAX; num_points];
    for (s, sub) in subdomains.iter().enumerate() {
        for &i in &sub.indices {
            match out.get_mut(i) {
                Some(slot) => *slot = s,
                None => {
                    return Err(OrbError::PointOutOfRange {
                        subdomain: s,
                        index: i,
                        num_points,
                    })
                }
            }
        }
    }
    Ok(out)
}

fn decompose<const D: usize>(
    points: &[[f64; D]],
    weights: Option<&[f64]>,
    parts: usize,
) -> Result<Vec<Subdomain<D>>, OrbError> {
    if parts == 0 {
        return Err(OrbError::NoParts);
    }
    if D == 0 {
        return Err(OrbError::NoAxes);
    }
    if parts > points.len().max(MAX_EMPTY_PARTS) {
        return Err(OrbError::TooManyParts {
            parts,
            points: points.len(),
        });
    }
    for (index, p) in points.iter().enumerate() {
        if let Some(axis) = p.iter().position(|c| !c.is_finite()) {
            return Err(OrbError::NonFinite { index, axis });
        }
    }
    let mut indices: Vec<usize> = (0..points.len()).collect();
    let mut out = Vec::with_capacity(parts);
    let region = ([f64::NEG_INFINITY; D], [f64::INFINITY; D]);
    split(points, weights, &mut indices, parts, region, &mut out);
    for sub in &mut out {
        sub.indices.sort_unstable();
    }
    Ok(out)
}

fn split<const D: usize>(
    points: &[[f64; D]],
    weights: Option<&[f64]>,
    idx: &mut [usize],
    parts: usize,
    region: ([f64; D], [f64; D]),
    out: &mut Vec<Subdomain<D>>,
) {
    if parts == 1 {
        out.push(Subdomain {
            indices: idx.to_vec(),
            lo: region.0,
            hi: region.1,
        });
        return;
    }
    let left_parts = parts / 2;
    let axis = longest_axis(points, idx);
    let by_axis =
        |a: &usize, b: &usize| points[*a][axis].total_cmp(&points[*b][axis]).then(a.cmp(b));
    // Sizes q+1 for the first r parts, q for the rest: the left parts take their exact
    // share, so every final count is floor or ceil of len/parts.
    let (q, r) = (idx.len() / parts, idx.len() % parts);
    let even = left_parts * q + r.min(left_parts);
    let left_len = match weights {
        None => even,
        Some(w) => {
            idx.sort_unstable_by(by_axis);
            // Scaled by the largest weight, the sum cannot overflow (it is at most len).
            let max = idx.iter().map(|&i| w[i]).fold(0.0, f64::max);
            if max > 0.0 {
                let wi = |i: usize| w[i] / max;
                let total: f64 = idx.iter().map(|&i| wi(i)).sum();
                let target = total * left_parts as f64 / parts as f64;
                // The prefix sums grow, so their distance to the target falls, then rises:
                // find the run of prefixes nearest it. Points of zero weight make that run
                // longer than one; of those equally balanced cuts the one nearest the even
                // count split leaves no part needlessly empty.
                let (mut acc, mut best) = (0.0, target.abs());
                let (mut first, mut last) = (0, 0);
                for (k, &i) in idx.iter().enumerate() {
                    acc += wi(i);
                    let d = (acc - target).abs();
                    if d < best {
                        (best, first, last) = (d, k + 1, k + 1);
                    } else if d == best {
                        last = k + 1;
                    } else {
                        break;
                    }
                }
                even.clamp(first, last)
            } else {
                // Weightless points: shared out as if their weights were equal.
                even
            }
        }
    };
    if left_len > 0 && left_len < idx.len() {
        idx.select_nth_unstable_by(left_len, by_axis);
    }
    let cut = if left_len == 0 || left_len == idx.len() {
        // Nothing on one side: cut at the edge of the points so regions stay disjoint. Upper
        // bounds are exclusive, so a cut above every point lies strictly above the largest.
        if left_len == 0 {
            idx.iter()
                .map(|&i| points[i][axis])
                .fold(f64::INFINITY, f64::min)
        } else {
            idx.iter()
                .map(|&i| points[i][axis])
                .fold(f64::NEG_INFINITY, f64::max)
                .next_up()
        }
    } else {
        // The plane between the largest lower and the smallest upper coordinate.
        let below = idx[..left_len]
            .iter()
            .map(|&i| points[i][axis])
            .fold(f64::NEG_INFINITY, f64::max);
        let above = points[idx[left_len]][axis];
        // Halves first: no overflow near f64::MAX. The cut must lie above the lower points
        // (upper bounds are exclusive); if rounding put it on `below`, use `above`.
        let mid = 0.5 * below + 0.5 * above;
        if mid > below {
            mid
        } else {
            above
        }
    };
    let cut = cut.clamp(region.0[axis], region.1[axis]);
    let (left, right) = idx.split_at_mut(left_len);
    let mut left_region = region;
    left_region.1[axis] = cut;
    let mut right_region = region;
    right_region.0[axis] = cut;
    split(points, weights, left, left_parts, left_region, out);
    split(
        points,
        weights,
        right,
        parts - left_parts,
        right_region,
        out,
    );
}

/// The axis along which the points' bounding box is longest (the lowest such axis on ties).
fn longest_axis<const D: usize>(points: &[[f64; D]], idx: &[usize]) -> usize {
    let mut lo = [f64::INFINITY; D];
    let mut hi = [f64::NEG_INFINITY; D];
    for &i in idx {
        for a in 0..D {
            lo[a] = lo[a].min(points[i][a]);
            hi[a] = hi[a].max(points[i][a]);
        }
    }
    (0..D)
        .max_by(|&a, &b| {
            (hi[a] - lo[a])
                .partial_cmp(&(hi[b] - lo[b]))
                .unwrap_or(Ordering::Equal)
                .then(b.cmp(&a))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskRng;

    fn cloud(n: usize, seed: u64) -> Vec<[f64; 3]> {
        (0..n as u64)
            .map(|i| {
                let mut r = TaskRng::new(seed, i);
                [r.next_f64() * 4.0, r.next_f64(), r.next_f64() * 2.0]
            })
            .collect()
    }

    #[test]
    fn equal_counts_for_one_to_nine_parts() {
        for len in [0, 1, 5, 17, 1000, 1001] {
            let pts = cloud(len, len as u64);
            for n in 1..=9 {
                let subs = orb(&pts, n).unwrap();
                assert_eq!(subs.len(), n);
                let counts: Vec<usize> = subs.iter().map(|s| s.indices.len()).collect();
                let (lo, hi) = (len / n, len.div_ceil(n));
                assert!(
                    counts.iter().all(|&c| c == lo || c == hi),
                    "len {len} n {n}: {counts:?}"
                );
                // Every point in exactly one subdomain, and inside that subdomain's region.
                let assign = assignment(&subs, len).unwrap();
                assert!(assign.iter().all(|&s| s < n));
                assert_eq!(counts.iter().sum::<usize>(), len);
                for (i, p) in pts.iter().enumerate() {
                    let s = &subs[assign[i]];
                    assert!((0..3).all(|a| p[a] >= s.lo[a] && p[a] <= s.hi[a]));
                }
            }
        }
    }

    #[test]
    fn first_cut_is_across_the_longest_axis() {
        // x spans 4, y 1, z 2: two parts are split at the median of x.
        let pts = cloud(1000, 3);
        let subs = orb(&pts, 2).unwrap();
        assert!(subs[0].hi[0].is_finite() && subs[0].hi[1].is_infinite());
        let cut = subs[0].hi[0];
        assert!(subs[0].indices.iter().all(|&i| pts[i][0] <= cut));
        assert!(subs[1].indices.iter().all(|&i| pts[i][0] >= cut));
        assert!(
            (cut - 2.0).abs() < 0.3,
            "median of U(0,4) near 2, got {cut}"
        );
    }

    #[test]
    fn weighted_split_balances_weight() {
        let pts: Vec<[f64; 1]> = (0..100).map(|i| [i as f64]).collect();
        // Weight grows with x: the cut for 2 parts lies well above the middle.
        let w: Vec<f64> = (0..100).map(|i| (i + 1) as f64).collect();
        let subs = orb_weighted(&pts, &w, 2).unwrap();
        let sum = |s: &Subdomain<1>| s.indices.iter().map(|&i| w[i]).sum::<f64>();
        let (a, b) = (sum(&subs[0]), sum(&subs[1]));
        assert!((a - b).abs() <= 100.0, "{a} vs {b}");
        assert!(subs[0].indices.len() > 60);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(orb::<2>(&[[0.0, 1.0]], 0), Err(OrbError::NoParts));
        assert_eq!(
            orb(&[[0.0, 1.0], [f64::NAN, 0.0]], 2),
            Err(OrbError::NonFinite { index: 1, axis: 0 })
        );
        assert!(matches!(
            orb_weighted(&[[0.0]], &[-1.0], 1),
            Err(OrbError::BadWeights(_))
        ));
        assert!(matches!(
            orb_weighted(&[[0.0]], &[], 1),
            Err(OrbError::BadWeights(_))
        ));
    }

    #[test]
    fn too_many_parts_is_an_error_not_a_panic() {
        let pts: Vec<[f64; 1]> = (0..5).map(|i| [i as f64]).collect();
        assert_eq!(
            orb(&pts, usize::MAX),
            Err(OrbError::TooManyParts {
                parts: usize::MAX,
                points: 5
            })
        );
        assert!(orb(&pts, MAX_EMPTY_PARTS + 1).is_err());
        assert_eq!(orb(&pts, 8).unwrap().len(), 8);
    }

    #[test]
    fn huge_coordinates_give_finite_cuts_and_regions_holding_their_points() {
        let pts: Vec<[f64; 1]> = vec![
            [f64::MAX],
            [f64::MAX * 0.9],
            [-f64::MAX],
            [f64::MAX * 0.95],
            [-f64::MAX * 0.5],
            [f64::MAX * 0.99],
        ];
        for n in 1..=6 {
            let subs = orb(&pts, n).unwrap();
            for s in &subs {
                assert!(s.lo[0] < f64::INFINITY && s.hi[0] > f64::NEG_INFINITY);
                for &i in &s.indices {
                    assert!(
                        s.region_contains(&pts[i]),
                        "n {n}: {:?} not in {s:?}",
                        pts[i]
                    );
                }
            }
            // Cuts are finite.
            assert!(
                subs[..n - 1].iter().all(|s| s.hi[0].is_finite()),
                "{subs:?}"
            );
        }
        // Adjacent floats: the cut still separates them.
        let a = 1.0f64;
        let b = f64::from_bits(a.to_bits() + 1);
        let subs = orb(&[[a], [b]], 2).unwrap();
        assert!(subs[0].region_contains(&[a]) && subs[1].region_contains(&[b]));
    }

    #[test]
    fn weights_summing_past_f64_max_still_balance() {
        let pts: Vec<[f64; 1]> = (0..5).map(|i| [i as f64]).collect();
        let counts = |subs: Vec<Subdomain<1>>| -> Vec<usize> {
            subs.iter().map(|s| s.indices.len()).collect()
        };
        let mut c = counts(orb_weighted(&pts, &[f64::MAX; 5], 2).unwrap());
        c.sort_unstable();
        assert_eq!(c, [2, 3]);
        let pts: Vec<[f64; 1]> = (0..4).map(|i| [i as f64]).collect();
        assert_eq!(
            counts(orb_weighted(&pts, &[f64::MAX; 4], 2).unwrap()),
            [2, 2]
        );
    }

    #[test]
    fn all_zero_weights_count_as_equal_weights() {
        let pts: Vec<[f64; 1]> = (0..5).map(|i| [i as f64]).collect();
        let subs = orb_weighted(&pts, &[0.0; 5], 3).unwrap();
        let counts: Vec<usize> = subs.iter().map(|s| s.indices.len()).collect();
        assert_eq!(
            counts,
            orb(&pts, 3)
                .unwrap()
                .iter()
                .map(|s| s.indices.len())
                .collect::<Vec<_>>()
        );
        assert!(counts.iter().all(|&c| c == 1 || c == 2), "{counts:?}");
    }

    /// Every point of `subs` lies in its own region, except on an upper face where a point of
    /// another subdomain has the same coordinate (a tie the balanced split had to break).
    fn check_points_in_regions<const D: usize>(pts: &[[f64; D]], subs: &[Subdomain<D>]) {
        let assign = assignment(subs, pts.len()).unwrap();
        for (i, p) in pts.iter().enumerate() {
            let s = &subs[assign[i]];
            for a in 0..D {
                assert!(p[a] >= s.lo[a], "point {i} {p:?} below its region {s:?}");
                let tie = || {
                    p[a] == s.hi[a]
                        && pts
                            .iter()
                            .enumerate()
                            .any(|(j, q)| assign[j] != assign[i] && q[a] == p[a])
                };
                assert!(
                    p[a] < s.hi[a] || tie(),
                    "point {i} {p:?} outside its region {s:?} (axis {a})"
                );
            }
        }
    }

    #[test]
    fn every_point_lies_in_its_own_region() {
        assert!(orb(&[[0.0], [1.0]], 3).unwrap()[1].region_contains(&[1.0]));
        let line: Vec<[f64; 1]> = (0..5).map(|i| [i as f64]).collect();
        let subs = orb_weighted(&line, &[1.0, 0.0, 0.0, 0.0, 0.0], 2).unwrap();
        check_points_in_regions(&line, &subs);
        for seed in 0..300u64 {
            let mut r = TaskRng::new(seed, 0);
            let len = (r.next_u64() % 24) as usize;
            // Few distinct values (many duplicates); every fifth set all equal.
            let grid = 1 + r.next_u64() % 4;
            let same = seed % 5 == 0;
            let pts: Vec<[f64; 2]> = (0..len)
                .map(|_| {
                    if same {
                        [0.5, -2.0]
                    } else {
                        [
                            (r.next_u64() % grid) as f64,
                            (r.next_u64() % grid) as f64 * 0.25,
                        ]
                    }
                })
                .collect();
            let weights: Vec<f64> = (0..len)
                .map(|_| [0.0, 0.0, 1.0, 2.5][(r.next_u64() % 4) as usize])
                .collect();
            for parts in 1..=len + 3 {
                let subs = orb(&pts, parts).unwrap();
                check_points_in_regions(&pts, &subs);
                let subs = orb_weighted(&pts, &weights, parts).unwrap();
                check_points_in_regions(&pts, &subs);
                assert_eq!(subs.iter().map(|s| s.indices.len()).sum::<usize>(), len);
            }
        }
    }

    #[test]
    fn equally_balanced_weighted_cuts_leave_no_part_empty() {
        let pts: Vec<[f64; 1]> = (0..5).map(|i| [i as f64]).collect();
        let subs = orb_weighted(&pts, &[1.0, 0.0, 0.0, 0.0, 0.0], 2).unwrap();
        let counts: Vec<usize> = subs.iter().map(|s| s.indices.len()).collect();
        assert_eq!(counts, [3, 2]);
        let subs = orb_weighted(&pts, &[0.0, 0.0, 0.0, 0.0, 1.0], 2).unwrap();
        assert!(subs.iter().all(|s| !s.indices.is_empty()), "{subs:?}");
    }

    #[test]
    fn assignment_for_too_few_points_is_an_error_not_a_panic() {
        let subs = orb::<2>(&[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], 2).unwrap();
        assert_eq!(assignment(&subs, 4).unwrap(), vec![0, 0, 1, 1]);
        assert_eq!(
            assignment(&subs, 3),
            Err(OrbError::PointOutOfRange {
                subdomain: 1,
                index: 3,
                num_points: 3
            })
        );
    }

    #[test]
    fn zero_dimensional_points_are_an_error() {
        assert_eq!(orb::<0>(&[[], []], 2), Err(OrbError::NoAxes));
        assert_eq!(orb_weighted::<0>(&[[]], &[1.0], 1), Err(OrbError::NoAxes));
    }

    #[test]
    fn identical_points_still_split_evenly() {
        let pts = vec![[1.0, 1.0]; 10];
        let subs = orb(&pts, 3).unwrap();
        let counts: Vec<usize> = subs.iter().map(|s| s.indices.len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert!(counts.iter().all(|&c| c == 3 || c == 4));
    }
}
