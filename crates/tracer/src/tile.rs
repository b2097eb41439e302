//! Image tiles: the unit of rendering work.
//!
//! A render is a sequence of passes; each pass covers the film (or, for an adaptive pass, the
//! pixels an [`AdaptiveSampler`](crate::AdaptiveSampler) picked) with [`TileTask`]s.
//! [`render_tile`](crate::render_tile) turns a task into a [`TileResult`] anywhere — another
//! thread, another process — and [`Film::merge`](crate::Film::merge) folds results into the
//! film. Both types are serde types: they are what render engines ship between processes.
//!
//! A pixel belongs to exactly one tile of a pass, and a sample's random numbers depend only on
//! `(seed, pixel, pass, sample index)`, so the film does not depend on how tiles were grouped
//! or in which order they arrived.

use crate::sampler::PixelSelection;
use crate::stats::PixelStats;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A tile, or a tile task or result, that does not fit its image.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum TileError {
    #[error("the image is {width}x{height}; both sides must be at least 1")]
    EmptyImage { width: u32, height: u32 },
    #[error("the tile size is 0; it must be at least 1")]
    ZeroTileSize,
    #[error("samples per pixel is 0; it must be at least 1")]
    ZeroSamples,
    #[error("tile {rect} is empty")]
    EmptyTile { rect: TileRect },
    #[error("tile {rect} does not fit in the {width}x{height} image")]
    OutsideImage {
        rect: TileRect,
        width: u32,
        height: u32,
    },
    #[error("the pixel mask of tile {rect} has {found} words; {expected} are needed for its {pixels} pixels")]
    MaskLength {
        rect: TileRect,
        pixels: usize,
        expected: usize,
        found: usize,
    },
    #[error("the pixel mask of tile {rect} selects pixels past the tile's {pixels} pixels")]
    MaskStrayBits { rect: TileRect, pixels: usize },
    #[error(
        "the result of tile {rect} carries {found} pixel statistics for {expected} selected pixels"
    )]
    StatsCount {
        rect: TileRect,
        expected: usize,
        found: usize,
    },
    #[error("the pixel selection is {found_width}x{found_height}, the image {width}x{height}")]
    SelectionSize {
        width: u32,
        height: u32,
        found_width: u32,
        found_height: u32,
    },
}

/// A rectangle of pixels: columns `x..x + width`, rows `y..y + height` (row 0 at the top).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TileRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Display for TileRect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{} at ({}, {})",
            self.width, self.height, self.x, self.y
        )
    }
}

impl TileRect {
    pub fn pixel_count(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Film coordinates of the tile's pixel `i` (row-major within the tile).
    pub fn pixel(&self, i: usize) -> (u32, u32) {
        let w = self.width as usize;
        (self.x + (i % w) as u32, self.y + (i / w) as u32)
    }

    /// Checks that the rectangle is non-empty and lies inside a `width` x `height` image.
    pub fn check_inside(&self, width: u32, height: u32) -> Result<(), TileError> {
        if self.width == 0 || self.height == 0 {
            return Err(TileError::EmptyTile { rect: *self });
        }
        let fits =
            |start: u32, len: u32, size: u32| start.checked_add(len).is_some_and(|end| end <= size);
        if !fits(self.x, self.width, width) || !fits(self.y, self.height, height) {
            return Err(TileError::OutsideImage {
                rect: *self,
                width,
                height,
            });
        }
        Ok(())
    }
}

/// Which pixels of a tile to sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelMask {
    /// Every pixel of the tile (full passes).
    All,
    /// Bit `i % 64` of word `i / 64` selects the tile's pixel `i` (row-major within the tile);
    /// exactly `ceil(pixels / 64)` words, no bits set past the last pixel.
    Bits(Vec<u64>),
}

impl PixelMask {
    pub fn contains(&self, i: usize) -> bool {
        match self {
            PixelMask::All => true,
            PixelMask::Bits(words) => words.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1),
        }
    }

    /// Number of selected pixels in a tile of `pixels` pixels.
    pub fn count(&self, pixels: usize) -> usize {
        match self {
            PixelMask::All => pixels,
            PixelMask::Bits(words) => words.iter().map(|w| w.count_ones() as usize).sum(),
        }
    }

    /// The selected pixel indices (row-major within the tile), in increasing order.
    pub fn selected(&self, pixels: usize) -> impl Iterator<Item = usize> + '_ {
        (0..pixels).filter(move |&i| self.contains(i))
    }

    /// Checks the mask's length against a tile.
    pub fn check(&self, rect: &TileRect) -> Result<(), TileError> {
        let PixelMask::Bits(words) = self else {
            return Ok(());
        };
        let pixels = rect.pixel_count();
        let expected = pixels.div_ceil(64);
        if words.len() != expected {
            return Err(TileError::MaskLength {
                rect: *rect,
                pixels,
                expected,
                found: words.len(),
            });
        }
        let tail = pixels % 64;
        if tail != 0 && words[expected - 1] >> tail != 0 {
            return Err(TileError::MaskStrayBits {
                rect: *rect,
                pixels,
            });
        }
        Ok(())
    }
}

/// Identifies a tile within a render: its pass and its index in the pass's tile grid
/// (row-major). Results may arrive in any order; each carries its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TileId {
    pub pass: u32,
    pub tile: u32,
}

/// What a pass renders: its index (passes are merged in increasing order), the samples each
/// selected pixel gets, and the render's seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassSpec {
    pub index: u32,
    pub samples_per_pixel: u32,
    pub seed: u64,
}

/// One unit of rendering work: sample the selected pixels of one tile.
///
/// A `TileTask` is always consistent (tile inside its image, mask of the right length, at least
/// one sample per pixel): [`TileTask::new`] and deserialisation both check, so
/// [`render_tile`](crate::render_tile) cannot fail on a task that came over the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TileTaskFields", into = "TileTaskFields")]
pub struct TileTask {
    f: TileTaskFields,
}

/// The serialised form of a [`TileTask`], checked on the way in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TileTaskFields {
    id: TileId,
    image_width: u32,
    image_height: u32,
    rect: TileRect,
    samples_per_pixel: u32,
    seed: u64,
    pixels: PixelMask,
}

impl TryFrom<TileTaskFields> for TileTask {
    type Error = TileError;
    fn try_from(f: TileTaskFields) -> Result<TileTask, TileError> {
        if f.image_width == 0 || f.image_height == 0 {
            return Err(TileError::EmptyImage {
                width: f.image_width,
                height: f.image_height,
            });
        }
        f.rect.check_inside(f.image_width, f.image_height)?;
        f.pixels.check(&f.rect)?;
        if f.samples_per_pixel == 0 {
            return Err(TileError::ZeroSamples);
        }
        Ok(TileTask { f })
    }
}

impl From<TileTask> for TileTaskFields {
    fn from(t: TileTask) -> TileTaskFields {
        t.f
    }
}

impl TileTask {
    /// A task for the pixels `pixels` of tile `rect` of an `image` (width, height) film.
    pub fn new(
        id: TileId,
        image: (u32, u32),
        rect: TileRect,
        samples_per_pixel: u32,
        seed: u64,
        pixels: PixelMask,
    ) -> Result<TileTask, TileError> {
        TileTask::try_from(TileTaskFields {
            id,
            image_width: image.0,
            image_height: image.1,
            rect,
            samples_per_pixel,
            seed,
            pixels,
        })
    }
    pub fn id(&self) -> TileId {
        self.f.id
    }
    /// Width and height of the whole image (the camera maps pixels through it).
    pub fn image_size(&self) -> (u32, u32) {
        (self.f.image_width, self.f.image_height)
    }
    pub fn rect(&self) -> TileRect {
        self.f.rect
    }
    pub fn samples_per_pixel(&self) -> u32 {
        self.f.samples_per_pixel
    }
    pub fn seed(&self) -> u64 {
        self.f.seed
    }
    pub fn pixels(&self) -> &PixelMask {
        &self.f.pixels
    }
    /// Number of pixels this task samples.
    pub fn pixel_count(&self) -> usize {
        self.f.pixels.count(self.f.rect.pixel_count())
    }
}

/// The outcome of a [`TileTask`]: the statistics of this pass's samples of each selected pixel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TileResult {
    pub id: TileId,
    pub rect: TileRect,
    /// The pixels sampled (the task's mask).
    pub pixels: PixelMask,
    /// One entry per selected pixel, in increasing pixel order (row-major within the tile).
    pub stats: Vec<PixelStats>,
    /// Rays traced (camera, bounce and shadow rays), for rays-per-second reports.
    pub ray_count: u64,
}

/// The tasks of one pass over a `width` x `height` image cut into `tile_size` squares (smaller
/// at the right and bottom edges), in tile-index order.
///
/// With `selection` (an adaptive pass), each task samples only the selected pixels of its tile
/// and tiles without any are left out; tile indices stay those of the full grid.
///
/// ```
/// use prism_tracer::{pass_tasks, PassSpec};
/// let pass = PassSpec { index: 0, samples_per_pixel: 4, seed: 1 };
/// let tasks = pass_tasks(100, 50, 32, &pass, None).unwrap();
/// assert_eq!(tasks.len(), 4 * 2);
/// assert_eq!(tasks.iter().map(|t| t.pixel_count()).sum::<usize>(), 100 * 50);
/// ```
pub fn pass_tasks(
    width: u32,
    height: u32,
    tile_size: u32,
    pass: &PassSpec,
    selection: Option<&PixelSelection>,
) -> Result<Vec<TileTask>, TileError> {
    if width == 0 || height == 0 {
        return Err(TileError::EmptyImage { width, height });
    }
    if tile_size == 0 {
        return Err(TileError::ZeroTileSize);
    }
    if pass.samples_per_pixel == 0 {
        return Err(TileError::ZeroSamples);
    }
    if let Some(sel) = selection {
        if sel.size() != (width, height) {
            return Err(TileError::SelectionSize {
                width,
                height,
                found_width: sel.size().0,
                found_height: sel.size().1,
            });
        }
    }
    let tiles_x = width.div_ceil(tile_size);
    let tiles_y = height.div_ceil(tile_size);
    let mut tasks = Vec::new();
    for ty in 0..tiles_y {
        for tx in 0..tiles_x {
            let x = tx * tile_size;
            let y = ty * tile_size;
            let rect = TileRect {
                x,
                y,
                width: tile_size.min(width - x),
                height: tile_size.min(height - y),
            };
            let pixels = match selection {
                None => PixelMask::All,
                Some(sel) => {
                    let n = rect.pixel_count();
                    let mut words = vec![0u64; n.div_ceil(64)];
                    let mut count = 0;
                    for i in 0..n {
                        let (px, py) = rect.pixel(i);
                        if sel.contains(px, py) {
                            words[i / 64] |= 1 << (i % 64);
                            count += 1;
                        }
                    }
                    match count {
                        0 => continue,
                        c if c == n => PixelMask::All,
                        _ => PixelMask::Bits(words),
                    }
                }
            };
            let id = TileId {
                pass: pass.index,
                tile: ty * tiles_x + tx,
            };
            tasks.push(TileTask::new(
                id,
                (width, height),
                rect,
                pass.samples_per_pixel,
                pass.seed,
                pixels,
            )?);
        }
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_every_pixel_once() {
        let pass = PassSpec {
            index: 3,
            samples_per_pixel: 2,
            seed: 9,
        };
        let (w, h) = (37, 23);
        let tasks = pass_tasks(w, h, 8, &pass, None).unwrap();
        let mut seen = vec![0u8; (w * h) as usize];
        for t in &tasks {
            assert_eq!(t.id().pass, 3);
            let r = t.rect();
            for i in 0..r.pixel_count() {
                let (x, y) = r.pixel(i);
                seen[(y * w + x) as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
        // Tile ids are distinct grid indices.
        let mut ids: Vec<u32> = tasks.iter().map(|t| t.id().tile).collect();
        ids.dedup();
        assert_eq!(ids.len(), tasks.len());
    }

    #[test]
    fn adaptive_tasks_sample_only_selected_pixels() {
        let (w, h) = (20, 10);
        let mut sel = PixelSelection::none(w, h);
        sel.insert(0, 0);
        sel.insert(19, 9);
        sel.insert(18, 9);
        let pass = PassSpec {
            index: 1,
            samples_per_pixel: 1,
            seed: 0,
        };
        let tasks = pass_tasks(w, h, 16, &pass, Some(&sel)).unwrap();
        // Tiles (0,0) and (1,0) of the 2x1 grid each hold selected pixels.
        assert_eq!(tasks.len(), 2);
        let selected: Vec<(u32, u32)> = tasks
            .iter()
            .flat_map(|t| {
                let r = t.rect();
                t.pixels()
                    .selected(r.pixel_count())
                    .map(move |i| r.pixel(i))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(selected, vec![(0, 0), (18, 9), (19, 9)]);
        assert!(matches!(
            pass_tasks(w, h + 1, 16, &pass, Some(&sel)),
            Err(TileError::SelectionSize { .. })
        ));
    }

    #[test]
    fn inconsistent_tasks_are_refused_also_when_deserialised() {
        let id = TileId { pass: 0, tile: 0 };
        let rect = TileRect {
            x: 8,
            y: 0,
            width: 8,
            height: 8,
        };
        assert!(matches!(
            TileTask::new(id, (10, 10), rect, 1, 0, PixelMask::All),
            Err(TileError::OutsideImage { .. })
        ));
        let inside = TileRect { x: 0, ..rect };
        assert!(matches!(
            TileTask::new(id, (10, 10), inside, 1, 0, PixelMask::Bits(vec![0; 2])),
            Err(TileError::MaskLength { .. })
        ));
        let small = TileRect {
            width: 2,
            height: 2,
            ..inside
        };
        assert!(matches!(
            TileTask::new(id, (10, 10), small, 1, 0, PixelMask::Bits(vec![1 << 4])),
            Err(TileError::MaskStrayBits { .. })
        ));
        assert_eq!(
            TileTask::new(id, (10, 10), small, 0, 0, PixelMask::All),
            Err(TileError::ZeroSamples)
        );
        let good = TileTask::new(id, (10, 10), inside, 1, 0, PixelMask::All).unwrap();
        let json = serde_json::to_string(&good).unwrap();
        assert_eq!(serde_json::from_str::<TileTask>(&json).unwrap(), good);
        let bad = json.replace("\"x\":0", "\"x\":5");
        let err = serde_json::from_str::<TileTask>(&bad).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }
}
