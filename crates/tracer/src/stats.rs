//! Per-pixel running statistics, as one element of Raysect's `StatsArray`.
//!
//! Samples are folded in with Welford's update; two partial statistics of disjoint sample sets
//! combine with the pooled formula of Chan, Golub & LeVeque, so statistics computed on any
//! thread or process merge into one film.

use crate::math::Rgb;
use serde::{Deserialize, Serialize};

/// Running mean, sum of squared deviations and count of one pixel's RGB samples.
///
/// Kept in f64: a pixel may gather millions of samples, and the merge must not lose the
/// variance to cancellation.
///
/// ```
/// use prism_tracer::PixelStats;
/// let mut a = PixelStats::default();
/// a.add_sample([1.0, 2.0, 3.0]);
/// let mut b = PixelStats::default();
/// b.add_sample([3.0, 2.0, 1.0]);
/// a.merge(&b);
/// assert_eq!(a.count, 2);
/// assert_eq!(a.mean, [2.0, 2.0, 2.0]);
/// assert_eq!(a.variance(), [2.0, 0.0, 2.0]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PixelStats {
    /// Mean of the samples per channel.
    pub mean: [f64; 3],
    /// Sum of squared deviations from the mean per channel (Welford's `M2`).
    pub m2: [f64; 3],
    /// Number of samples.
    pub count: u64,
}

impl PixelStats {
    /// Folds one sample in (Welford).
    pub fn add_sample(&mut self, value: [f64; 3]) {
        self.count += 1;
        let n = self.count as f64;
        for (c, &v) in value.iter().enumerate() {
            let delta = v - self.mean[c];
            self.mean[c] += delta / n;
            self.m2[c] += delta * (v - self.mean[c]);
        }
    }

    /// Combines the statistics of a disjoint set of samples into `self` (pooled, Chan et al.).
    ///
    /// The result depends on the order of the operands in the last bits, so a film always
    /// applies a pixel's updates in pass order.
    pub fn merge(&mut self, other: &PixelStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let na = self.count as f64;
        let nb = other.count as f64;
        let n = na + nb;
        for c in 0..3 {
            let delta = other.mean[c] - self.mean[c];
            self.mean[c] += delta * (nb / n);
            self.m2[c] += other.m2[c] + delta * delta * (na * nb / n);
        }
        // Counts from elsewhere (a tile result, a film read back) may be anything; see
        // `Film::merge`.
        self.count = self.count.saturating_add(other.count);
    }

    /// Sample variance per channel (`M2 / (n - 1)`); zero with fewer than two samples.
    pub fn variance(&self) -> [f64; 3] {
        if self.count < 2 {
            return [0.0; 3];
        }
        let d = (self.count - 1) as f64;
        self.m2.map(|m| (m / d).max(0.0))
    }

    /// Standard error of the mean per channel, `sqrt(variance / n)`; zero without samples.
    pub fn std_error(&self) -> [f64; 3] {
        if self.count == 0 {
            return [0.0; 3];
        }
        let n = self.count as f64;
        self.variance().map(|v| (v / n).sqrt())
    }

    /// Raysect's normalised standard error: the largest over channels of `error / mean`,
    /// a channel with a non-positive mean counting as zero.
    pub fn normalised_error(&self) -> f64 {
        let err = self.std_error();
        (0..3)
            .map(|c| {
                if self.mean[c] > 0.0 {
                    err[c] / self.mean[c]
                } else {
                    0.0
                }
            })
            .fold(0.0, f64::max)
    }

    /// The mean as an f32 colour.
    pub fn mean_rgb(&self) -> Rgb {
        Rgb::new(
            self.mean[0] as f32,
            self.mean[1] as f32,
            self.mean[2] as f32,
        )
    }

    /// The standard error as an f32 colour.
    pub fn error_rgb(&self) -> Rgb {
        let e = self.std_error();
        Rgb::new(e[0] as f32, e[1] as f32, e[2] as f32)
    }

    /// True if every field has the same bits as `other`'s (unlike `==`, tells -0.0 from 0.0).
    pub fn bit_identical(&self, other: &PixelStats) -> bool {
        self.count == other.count
            && self
                .mean
                .iter()
                .chain(&self.m2)
                .zip(other.mean.iter().chain(&other.m2))
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: usize) -> Vec<[f64; 3]> {
        // A deterministic, non-trivial sequence with a large offset, where the naive
        // sum-of-squares formula would lose the variance.
        (0..n)
            .map(|i| {
                let t = i as f64;
                [
                    1e6 + (t * 0.37).sin(),
                    (t * 1.3).cos() * 5.0,
                    if i % 7 == 0 { 100.0 } else { 0.0 },
                ]
            })
            .collect()
    }

    fn direct(xs: &[[f64; 3]]) -> ([f64; 3], [f64; 3]) {
        let n = xs.len() as f64;
        let mut mean = [0.0; 3];
        let mut var = [0.0; 3];
        for c in 0..3 {
            mean[c] = xs.iter().map(|x| x[c]).sum::<f64>() / n;
            var[c] = xs.iter().map(|x| (x[c] - mean[c]).powi(2)).sum::<f64>() / (n - 1.0);
        }
        (mean, var)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn welford_matches_the_two_pass_formula() {
        let xs = samples(1000);
        let mut s = PixelStats::default();
        xs.iter().for_each(|&x| s.add_sample(x));
        let (mean, var) = direct(&xs);
        assert_eq!(s.count, 1000);
        for c in 0..3 {
            assert!(close(s.mean[c], mean[c]), "mean {c}");
            assert!(close(s.variance()[c], var[c]), "variance {c}");
        }
    }

    #[test]
    fn merging_parts_equals_one_pass_over_all_samples() {
        let xs = samples(999);
        let mut whole = PixelStats::default();
        xs.iter().for_each(|&x| whole.add_sample(x));
        // Uneven parts, including an empty one and a single sample.
        let cuts = [0, 0, 1, 300, 301, 750, 999];
        let mut merged = PixelStats::default();
        for w in cuts.windows(2) {
            let mut part = PixelStats::default();
            xs[w[0]..w[1]].iter().for_each(|&x| part.add_sample(x));
            merged.merge(&part);
        }
        assert_eq!(merged.count, whole.count);
        for c in 0..3 {
            assert!(close(merged.mean[c], whole.mean[c]));
            assert!(close(merged.variance()[c], whole.variance()[c]));
        }
    }

    #[test]
    fn errors_follow_raysect_definitions() {
        let mut s = PixelStats::default();
        assert_eq!(s.std_error(), [0.0; 3]);
        s.add_sample([1.0, 0.0, -1.0]);
        assert_eq!(s.variance(), [0.0; 3]);
        s.add_sample([3.0, 0.0, -3.0]);
        // variance 2, error sqrt(2/2) = 1, normalised by mean 2 for red; green and blue have
        // non-positive means and count as zero.
        assert_eq!(s.std_error(), [1.0, 0.0, 1.0]);
        assert_eq!(s.normalised_error(), 0.5);
        let mut t = s;
        t.mean[1] = -0.0;
        assert!(t == s && !t.bit_identical(&s));
    }
}
