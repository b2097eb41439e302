//! Adaptive sampling: which pixels the next pass re-samples, with Raysect's semantics.

use crate::film::Film;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A set of film pixels (a bitmask over the whole image), as picked by an [`AdaptiveSampler`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelSelection {
    width: u32,
    height: u32,
    bits: Vec<u64>,
}

impl PixelSelection {
    /// The empty selection of a `width` x `height` image.
    pub fn none(width: u32, height: u32) -> PixelSelection {
        let n = width as usize * height as usize;
        PixelSelection {
            width,
            height,
            bits: vec![0; n.div_ceil(64)],
        }
    }

    /// Every pixel of a `width` x `height` image.
    pub fn all(width: u32, height: u32) -> PixelSelection {
        let mut s = PixelSelection::none(width, height);
        for y in 0..height {
            for x in 0..width {
                s.insert(x, y);
            }
        }
        s
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Selects pixel `(x, y)`; coordinates outside the image are ignored.
    pub fn insert(&mut self, x: u32, y: u32) {
        if x < self.width && y < self.height {
            let i = y as usize * self.width as usize + x as usize;
            self.bits[i / 64] |= 1 << (i % 64);
        }
    }

    pub fn contains(&self, x: u32, y: u32) -> bool {
        if x >= self.width || y >= self.height {
            return false;
        }
        let i = y as usize * self.width as usize + x as usize;
        self.bits[i / 64] >> (i % 64) & 1 == 1
    }

    /// Number of selected pixels.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }
}

/// Adaptive sampler settings out of their range.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum SamplerError {
    #[error("adaptive sampler: fraction is {0}; it must be in (0, 1]")]
    Fraction(f64),
    #[error("adaptive sampler: ratio is {0}; it must be at least 1")]
    Ratio(f64),
    #[error("adaptive sampler: cutoff is {0}; it must be finite and at least 0")]
    Cutoff(f64),
}

/// Raysect's `MonoAdaptiveSampler2D` applied to an RGB film.
///
/// A pixel's normalised standard error is the largest over its channels of
/// `std_error / mean` (zero where the mean is not positive). The next pass re-samples a pixel if
/// - its sample count is below `max(min_samples, max_samples / ratio)`, where `max_samples` is
///   the largest count on the film, or
/// - its normalised error is above `max(cutoff, p)`, where `p` is the `(1 - fraction)`
///   percentile of all pixels' normalised errors (linear interpolation, as NumPy's default).
///
/// So with `cutoff == 0` about the worst `fraction` of pixels is re-sampled each pass (with
/// `fraction == 1`, every pixel whose error is above zero, or above the cutoff); with a
/// cutoff the render converges once every pixel is below it. Pixels with fewer than two samples
/// are always selected: one sample gives no estimate of the error (its variance reads as zero),
/// so a pass of one sample per pixel must not count as converged.
///
/// ```
/// use prism_tracer::{AdaptiveSampler, Film};
/// let sampler = AdaptiveSampler { fraction: 0.2, ratio: 10.0, min_samples: 100, cutoff: 0.01 };
/// let film = Film::new(4, 4).unwrap();
/// // Nothing sampled yet: every pixel is picked.
/// assert_eq!(sampler.select(&film).unwrap().count(), 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveSampler {
    /// Fraction of the pixels, the noisiest, re-sampled per pass, in (0, 1].
    pub fraction: f64,
    /// No pixel falls further behind the most-sampled pixel than this factor (>= 1).
    pub ratio: f64,
    /// Every pixel gets at least this many samples.
    pub min_samples: u64,
    /// Normalised standard error below which a pixel is done (0: no cutoff).
    pub cutoff: f64,
}

impl Default for AdaptiveSampler {
    /// Raysect's defaults: `fraction 0.2, ratio 10, min_samples 1000, cutoff 0`.
    fn default() -> Self {
        AdaptiveSampler {
            fraction: 0.2,
            ratio: 10.0,
            min_samples: 1000,
            cutoff: 0.0,
        }
    }
}

impl AdaptiveSampler {
    pub fn validate(&self) -> Result<(), SamplerError> {
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(SamplerError::Fraction(self.fraction));
        }
        if self.ratio.is_nan() || self.ratio < 1.0 {
            return Err(SamplerError::Ratio(self.ratio));
        }
        if !(self.cutoff >= 0.0 && self.cutoff.is_finite()) {
            return Err(SamplerError::Cutoff(self.cutoff));
        }
        Ok(())
    }

    /// The pixels the next pass should sample, or `None` when none is left (converged).
    ///
    /// Out-of-range settings are clamped into range (call [`validate`](Self::validate) to
    /// report them instead).
    pub fn select(&self, film: &Film) -> Option<PixelSelection> {
        let (width, height) = (film.width(), film.height());
        let pixels = film.pixels();
        let max_samples = pixels.iter().map(|p| p.count).max().unwrap_or(0);
        let ratio = if self.ratio >= 1.0 { self.ratio } else { 1.0 };
        // Raysect truncates the quotient to an integer.
        let min_samples = self.min_samples.max((max_samples as f64 / ratio) as u64);
        // On all cores: the choice is made between passes while every rank waits for it.
        let errors: Vec<f64> = pixels.par_iter().map(|p| p.normalised_error()).collect();
        let fraction = if self.fraction > 0.0 {
            self.fraction.min(1.0)
        } else {
            f64::MIN_POSITIVE
        };
        // The 0th percentile is the smallest error, which `e > threshold` would leave out: a
        // fraction of 1 means every pixel with an error (above the cutoff).
        let percentile = if fraction >= 1.0 {
            0.0
        } else {
            percentile(&errors, 1.0 - fraction)
        };
        let threshold = percentile.max(self.cutoff.max(0.0));
        let mut selection = PixelSelection::none(width, height);
        for (i, (p, &e)) in pixels.iter().zip(&errors).enumerate() {
            if p.count < 2 || p.count < min_samples || e > threshold {
                selection.insert(i as u32 % width, i as u32 / width);
            }
        }
        (!selection.is_empty()).then_some(selection)
    }
}

/// The `q`-quantile (q in [0, 1]) of `values` by linear interpolation between closest ranks
/// (NumPy's default); 0 for no values. NaNs sort last.
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    let (_, &mut a, rest) = v.select_nth_unstable_by(lo, f64::total_cmp);
    if frac == 0.0 || rest.is_empty() {
        return a;
    }
    let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
    a + (b - a) * frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::PixelStats;
    use crate::tile::{PixelMask, TileId, TileRect, TileResult};

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], 25) == 1.75; 80 -> 3.4; 100 -> 4
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 0.25), 1.75);
        assert!((percentile(&v, 0.8) - 3.4).abs() < 1e-12);
        assert_eq!(percentile(&v, 1.0), 4.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    /// A 10x1 film whose pixel `i` has `counts[i]` samples with normalised error `errs[i]`.
    fn film_with(counts: &[u64], errs: &[f64]) -> Film {
        let mut film = Film::new(counts.len() as u32, 1).unwrap();
        let stats = counts
            .iter()
            .zip(errs)
            .map(|(&n, &e)| {
                // mean 1; std_error = sqrt(m2 / (n - 1) / n) = e.
                let m2 = e * e * n as f64 * (n - 1) as f64;
                PixelStats {
                    mean: [1.0; 3],
                    m2: [m2; 3],
                    count: n,
                }
            })
            .collect();
        film.merge(&TileResult {
            id: TileId { pass: 0, tile: 0 },
            rect: TileRect {
                x: 0,
                y: 0,
                width: counts.len() as u32,
                height: 1,
            },
            pixels: PixelMask::All,
            stats,
            ray_count: 0,
        })
        .unwrap();
        film
    }

    fn selected(s: &Option<PixelSelection>) -> Vec<u32> {
        match s {
            None => vec![],
            Some(s) => (0..s.size().0).filter(|&x| s.contains(x, 0)).collect(),
        }
    }

    #[test]
    fn picks_the_noisiest_fraction_and_the_undersampled() {
        let errs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
        let mut counts = [100; 10];
        let s = AdaptiveSampler {
            fraction: 0.2,
            ratio: 10.0,
            min_samples: 10,
            cutoff: 0.0,
        };
        // 80th percentile of 0.1..1.0 is 0.82: pixels 8 and 9.
        assert_eq!(selected(&s.select(&film_with(&counts, &errs))), vec![8, 9]);
        // Pixel 0 far behind the most-sampled pixel (2000 / 10 = 200 > 100).
        counts[5] = 2000;
        assert_eq!(
            selected(&s.select(&film_with(&counts, &errs))),
            vec![0, 1, 2, 3, 4, 6, 7, 8, 9]
        );
        // min_samples dominates.
        let s2 = AdaptiveSampler {
            min_samples: 101,
            ..s
        };
        let counts = [100, 101, 101, 101, 101, 101, 101, 101, 101, 101];
        assert_eq!(
            selected(&s2.select(&film_with(&counts, &errs))),
            vec![0, 8, 9]
        );
    }

    #[test]
    fn a_fraction_of_one_picks_every_pixel_with_an_error() {
        let errs = [0.1, 0.2, 0.3, 0.0, 0.5];
        let counts = [100; 5];
        let s = AdaptiveSampler {
            fraction: 1.0,
            ratio: 10.0,
            min_samples: 10,
            cutoff: 0.0,
        };
        // The least noisy pixel too (0.1); not the one with no error at all.
        assert_eq!(
            selected(&s.select(&film_with(&counts, &errs))),
            vec![0, 1, 2, 4]
        );
        let s = AdaptiveSampler { cutoff: 0.25, ..s };
        assert_eq!(selected(&s.select(&film_with(&counts, &errs))), vec![2, 4]);
    }

    #[test]
    fn one_sample_gives_no_error_estimate() {
        // `--spp 1`: after the first pass every error reads zero, but nothing is known yet.
        let s = AdaptiveSampler {
            fraction: 0.2,
            ratio: 10.0,
            min_samples: 0,
            cutoff: 0.0,
        };
        let zero = [0.0; 10];
        let mut counts = [1; 10];
        assert_eq!(
            selected(&s.select(&film_with(&counts, &zero))),
            (0..10).collect::<Vec<u32>>()
        );
        // Two samples that agree do estimate a zero error: those pixels are done.
        counts = [2; 10];
        assert_eq!(s.select(&film_with(&counts, &zero)), None);
        counts[7] = 1;
        assert_eq!(selected(&s.select(&film_with(&counts, &zero))), vec![7]);
    }

    #[test]
    fn a_cutoff_lets_the_render_converge() {
        let counts = [100; 10];
        let s = AdaptiveSampler {
            fraction: 0.5,
            ratio: 10.0,
            min_samples: 10,
            cutoff: 0.65,
        };
        let errs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
        // cutoff above the median: only pixels above the cutoff.
        assert_eq!(
            selected(&s.select(&film_with(&counts, &errs))),
            vec![6, 7, 8, 9]
        );
        let done = [0.01; 10];
        assert_eq!(s.select(&film_with(&counts, &done)), None);
        assert!(s.validate().is_ok());
        assert_eq!(
            AdaptiveSampler { fraction: 0.0, ..s }.validate(),
            Err(SamplerError::Fraction(0.0))
        );
        assert_eq!(
            AdaptiveSampler { ratio: 0.5, ..s }.validate(),
            Err(SamplerError::Ratio(0.5))
        );
        assert_eq!(
            AdaptiveSampler {
                cutoff: f64::NAN,
                ..s
            }
            .validate()
            .map_err(|e| e.to_string().contains("cutoff")),
            Err(true)
        );
    }
}
