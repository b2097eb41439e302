//! The film: per-pixel statistics of every sample taken so far.

use crate::math::Rgb;
use crate::memory::{show_bytes, MemoryLimit};
use crate::stats::PixelStats;
use crate::tile::{TileError, TileId, TileResult};
use rayon::prelude::*;
use thiserror::Error;

/// A tile result that cannot be merged into a film. The film is left unchanged.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum FilmError {
    #[error("a film of {width}x{height} pixels: both sides must be at least 1 and the area at most 2^32")]
    Size { width: u32, height: u32 },
    #[error("a film of {width}x{height} pixels needs {:.1} GiB of memory, which this machine cannot give", *bytes as f64 / (1u64 << 30) as f64)]
    OutOfMemory { width: u32, height: u32, bytes: u64 },
    #[error("a film of {width}x{height} pixels needs {} of memory, more than the {} this process may use ({origin})", show_bytes(*bytes), show_bytes(*limit))]
    OverLimit {
        width: u32,
        height: u32,
        bytes: u64,
        limit: u64,
        origin: String,
    },
    #[error("tile result {id:?}: {source}")]
    Tile {
        id: TileId,
        #[source]
        source: TileError,
    },
    #[error("tile result {id:?}: pixel ({x}, {y}) already has pass {merged} merged; passes must be merged in increasing order, each once")]
    PassOrder {
        id: TileId,
        x: u32,
        y: u32,
        merged: u32,
    },
}

/// Per-pixel statistics ([`PixelStats`]: mean, variance and count per channel) of an image,
/// Raysect's `StatsArray` for RGB.
///
/// Tile results merge in with the pooled combine. Each pixel takes at most one update per pass,
/// in increasing pass order, which [`merge`](Film::merge) enforces: since a pixel belongs to
/// exactly one tile of a pass, the film is bit-identical whatever order the tiles of a pass
/// arrive in.
#[derive(Clone, Debug, PartialEq)]
pub struct Film {
    width: u32,
    height: u32,
    pixels: Vec<PixelStats>,
    /// One more than the last pass merged into each pixel (0: none yet).
    next_pass: Vec<u32>,
    ray_count: u64,
}

impl Film {
    /// An empty film of `width` x `height` pixels.
    pub fn new(width: u32, height: u32) -> Result<Film, FilmError> {
        Film::new_within(width, height, crate::memory::memory_limit())
    }

    /// [`Film::new`], refused if it would need more memory than `limit`.
    fn new_within(width: u32, height: u32, limit: Option<MemoryLimit>) -> Result<Film, FilmError> {
        let n = u64::from(width) * u64::from(height);
        if n == 0 || n > u64::from(u32::MAX) {
            return Err(FilmError::Size { width, height });
        }
        // A film too large for this machine is an error to report, not an abort: the size is
        // user input (`--width`, `--height`). The reservation below does not fail under
        // overcommit, where the process would be killed later, as the pixels are touched.
        let n = n as usize;
        let bytes = n * (size_of::<PixelStats>() + size_of::<u32>());
        if let Some(limit) = limit.filter(|l| bytes as u64 > l.bytes) {
            return Err(FilmError::OverLimit {
                width,
                height,
                bytes: bytes as u64,
                limit: limit.bytes,
                origin: limit.origin,
            });
        }
        let too_large = |_| FilmError::OutOfMemory {
            width,
            height,
            bytes: bytes as u64,
        };
        let mut pixels = Vec::new();
        pixels.try_reserve_exact(n).map_err(too_large)?;
        pixels.resize(n, PixelStats::default());
        let mut next_pass = Vec::new();
        next_pass.try_reserve_exact(n).map_err(too_large)?;
        next_pass.resize(n, 0);
        Ok(Film {
            width,
            height,
            pixels,
            next_pass,
            ray_count: 0,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }

    /// All pixels, row-major from the top-left corner.
    pub fn pixels(&self) -> &[PixelStats] {
        &self.pixels
    }

    /// The statistics of pixel `(x, y)`; `None` outside the film.
    pub fn pixel(&self, x: u32, y: u32) -> Option<&PixelStats> {
        (x < self.width && y < self.height)
            .then(|| &self.pixels[y as usize * self.width as usize + x as usize])
    }

    /// Rays traced for all merged results (a sum of integers, so order-independent).
    pub fn ray_count(&self) -> u64 {
        self.ray_count
    }

    /// Samples taken over all pixels.
    pub fn sample_count(&self) -> u64 {
        // Saturating for the reason `merge` gives.
        self.pixels
            .iter()
            .fold(0u64, |sum, p| sum.saturating_add(p.count))
    }

    /// Per-pixel mean radiance, row-major.
    ///
    /// Per pixel on all cores: the image is taken after every pass while every rank waits
    /// (25 ms on one core at 1920×1080).
    pub fn mean_image(&self) -> Vec<Rgb> {
        self.pixels.par_iter().map(PixelStats::mean_rgb).collect()
    }

    /// Per-pixel standard error of the mean, row-major.
    pub fn error_image(&self) -> Vec<Rgb> {
        self.pixels.par_iter().map(PixelStats::error_rgb).collect()
    }

    /// The passes the film holds, as its pixels say: `(first, last)`, where every pixel has
    /// merged passes below `first` (or skipped them) and none has merged a pass at or past
    /// `last`. A film of K whole passes of an adaptive render has `first >= 1` (pass 0 covers
    /// every pixel) and `last == K` (the last pass covered some pixel); an empty film `(0, 0)`.
    pub fn passes_merged(&self) -> (usize, usize) {
        let lo = self.next_pass.iter().copied().min().unwrap_or(0);
        let hi = self.next_pass.iter().copied().max().unwrap_or(0);
        (lo as usize, hi as usize)
    }

    /// For each pixel, one more than the last pass merged into it (0: none yet).
    pub(crate) fn next_passes(&self) -> &[u32] {
        &self.next_pass
    }

    /// A film from its parts (a checkpoint's): `None` unless the lengths fit the size.
    pub(crate) fn from_parts(
        width: u32,
        height: u32,
        pixels: Vec<PixelStats>,
        next_pass: Vec<u32>,
        ray_count: u64,
    ) -> Option<Film> {
        let n = u64::from(width) * u64::from(height);
        (n > 0
            && n <= u64::from(u32::MAX)
            && pixels.len() as u64 == n
            && next_pass.len() as u64 == n)
            .then_some(Film {
                width,
                height,
                pixels,
                next_pass,
                ray_count,
            })
    }

    /// True if every pixel's statistics have the same bits as `other`'s (and the ray counts
    /// agree): the check for reproducible renders.
    pub fn bit_identical(&self, other: &Film) -> bool {
        self.width == other.width
            && self.height == other.height
            && self.ray_count == other.ray_count
            && self
                .pixels
                .iter()
                .zip(&other.pixels)
                .all(|(a, b)| a.bit_identical(b))
    }

    /// Folds a tile result into its pixels.
    ///
    /// Errors, leaving the film unchanged, if the result does not fit the film, is internally
    /// inconsistent, or would update a pixel out of pass order (a pass merged twice, or an
    /// earlier pass after a later one).
    pub fn merge(&mut self, result: &TileResult) -> Result<(), FilmError> {
        let id = result.id;
        let tile_err = |source| FilmError::Tile { id, source };
        let rect = result.rect;
        rect.check_inside(self.width, self.height)
            .map_err(tile_err)?;
        result.pixels.check(&rect).map_err(tile_err)?;
        let n = rect.pixel_count();
        let expected = result.pixels.count(n);
        if result.stats.len() != expected {
            return Err(tile_err(TileError::StatsCount {
                rect,
                expected,
                found: result.stats.len(),
            }));
        }
        let index = |i: usize| {
            let (x, y) = rect.pixel(i);
            (x, y, y as usize * self.width as usize + x as usize)
        };
        for i in result.pixels.selected(n) {
            let (x, y, k) = index(i);
            if self.next_pass[k] > id.pass {
                return Err(FilmError::PassOrder {
                    id,
                    x,
                    y,
                    merged: self.next_pass[k] - 1,
                });
            }
        }
        for (i, stats) in result.pixels.selected(n).zip(&result.stats) {
            let (_, _, k) = index(i);
            self.pixels[k].merge(stats);
            self.next_pass[k] = id.pass.saturating_add(1);
        }
        // A count from a result or a film read back (a checkpoint, another process) may be
        // anything; a statistic pinned at its largest value beats a panic or a wrap to 0.
        self.ray_count = self.ray_count.saturating_add(result.ray_count);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile::{PixelMask, TileRect};

    fn result(pass: u32, rect: TileRect, pixels: PixelMask, value: f64) -> TileResult {
        let n = pixels.count(rect.pixel_count());
        let mut s = PixelStats::default();
        s.add_sample([value; 3]);
        s.add_sample([value * 2.0; 3]);
        TileResult {
            id: TileId { pass, tile: 0 },
            rect,
            pixels,
            stats: vec![s; n],
            ray_count: 5,
        }
    }

    const RECT: TileRect = TileRect {
        x: 1,
        y: 1,
        width: 2,
        height: 2,
    };

    #[test]
    fn merges_only_the_selected_pixels_of_the_tile() {
        let mut film = Film::new(4, 3).unwrap();
        film.merge(&result(0, RECT, PixelMask::Bits(vec![0b1001]), 1.0))
            .unwrap();
        assert_eq!(film.pixel(1, 1).unwrap().count, 2);
        assert_eq!(film.pixel(2, 1).unwrap().count, 0);
        assert_eq!(film.pixel(1, 2).unwrap().count, 0);
        assert_eq!(film.pixel(2, 2).unwrap().count, 2);
        assert_eq!(film.pixel(2, 2).unwrap().mean, [1.5; 3]);
        assert_eq!(film.sample_count(), 4);
        assert_eq!(film.ray_count(), 5);
        assert!(film.pixel(4, 0).is_none());
    }

    #[test]
    fn bad_results_are_refused_and_leave_the_film_unchanged() {
        let mut film = Film::new(4, 3).unwrap();
        film.merge(&result(1, RECT, PixelMask::All, 1.0)).unwrap();
        let before = film.clone();
        // Same pass again, and an earlier pass after a later one.
        for pass in [1, 0] {
            let err = film
                .merge(&result(pass, RECT, PixelMask::All, 1.0))
                .unwrap_err();
            assert!(
                matches!(err, FilmError::PassOrder { merged: 1, .. }),
                "{err}"
            );
        }
        let outside = TileRect { x: 3, ..RECT };
        assert!(matches!(
            film.merge(&result(2, outside, PixelMask::All, 1.0)),
            Err(FilmError::Tile {
                source: TileError::OutsideImage { .. },
                ..
            })
        ));
        let mut short = result(2, RECT, PixelMask::All, 1.0);
        short.stats.pop();
        let err = film.merge(&short).unwrap_err();
        assert!(
            err.to_string().contains("3 pixel statistics for 4"),
            "{err}"
        );
        assert!(film.bit_identical(&before));
        // A later pass is fine.
        film.merge(&result(2, RECT, PixelMask::All, 1.0)).unwrap();
        assert_eq!(film.pixel(1, 1).unwrap().count, 4);
        assert!(Film::new(0, 5).is_err());
    }

    /// A film from elsewhere (a checkpoint, another process) may hold any counts; adding to
    /// them used to overflow: a panic in debug builds, a wrap to a small count in release.
    #[test]
    fn counts_near_the_top_saturate_rather_than_overflow() {
        let full = PixelStats {
            count: u64::MAX - 1,
            ..PixelStats::default()
        };
        let mut film = Film::from_parts(4, 3, vec![full; 12], vec![0; 12], u64::MAX - 2).unwrap();
        film.merge(&result(0, RECT, PixelMask::All, 1.0)).unwrap();
        assert_eq!(film.ray_count(), u64::MAX);
        assert_eq!(film.pixel(1, 1).unwrap().count, u64::MAX);
        assert_eq!(film.pixel(0, 0).unwrap().count, u64::MAX - 1);
        assert_eq!(film.sample_count(), u64::MAX);
    }

    /// Under overcommit the reservation succeeds, and a job limited to 256 MB was killed
    /// without a message as the film's pages were touched.
    #[test]
    fn a_film_larger_than_the_memory_limit_is_refused_saying_both() {
        let job = "/sys/fs/cgroup/memory/slurm/uid_1/job_5/memory.limit_in_bytes";
        let limit = MemoryLimit {
            bytes: 256 << 20,
            origin: format!("the limit of its cgroup, in {job}"),
        };
        let e = Film::new_within(2500, 2500, Some(limit.clone())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "a film of 2500x2500 pixels needs 357.6 MiB of memory, more than the 256.0 MiB \
                 this process may use (the limit of its cgroup, in {job})"
            )
        );
        let film = Film::new_within(2000, 2000, Some(limit)).unwrap();
        assert_eq!(film.pixels().len(), 4_000_000);
    }
}
