//! Image output: tone-mapped sRGB PNG, linear OpenEXR, and the per-pixel standard error.

use crate::film::Film;
use crate::math::Rgb;
use rayon::prelude::*;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// An image that could not be written; names the file.
#[derive(Debug, Error)]
pub enum OutputError {
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step of the replacement around the encoding failed (following a symbolic link,
    /// renaming the new file into place: an immutable file or a directory that forbids it).
    #[error("cannot {action} for {}: {source}", path.display())]
    Replace {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write PNG {}: {source}", path.display())]
    Png {
        path: PathBuf,
        #[source]
        source: png::EncodingError,
    },
    #[error("cannot write OpenEXR {}: {source}", path.display())]
    Exr {
        path: PathBuf,
        #[source]
        source: exr::error::Error,
    },
}

/// How linear radiance becomes display values (before the sRGB curve).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ToneMap {
    /// Scale by `exposure`, clip at 1.
    Clamp { exposure: f32 },
    /// Scale by `exposure`, then compress luminance `L` to `L / (1 + L)` keeping the hue
    /// (Reinhard et al. 2002): nothing clips, highlights roll off.
    Reinhard { exposure: f32 },
}

impl Default for ToneMap {
    fn default() -> Self {
        ToneMap::Clamp { exposure: 1.0 }
    }
}

impl ToneMap {
    /// The display value in [0, 1] per channel; non-finite or negative input shows as black.
    pub fn apply(&self, c: Rgb) -> Rgb {
        let c = if c.is_finite() {
            c.max(Rgb::ZERO)
        } else {
            Rgb::ZERO
        };
        let mapped = match *self {
            ToneMap::Clamp { exposure } => c * exposure,
            ToneMap::Reinhard { exposure } => {
                let c = c * exposure;
                let l = c.luminance();
                if l > 0.0 {
                    c * (1.0 / (1.0 + l))
                } else {
                    c
                }
            }
        };
        mapped.min(Rgb::ONE).max(Rgb::ZERO)
    }
}

/// The normalised error [`write_error_png`] shows as white: the 99th percentile of the
/// pixels' errors (1 when that is zero).
fn error_white(errors: &[f64]) -> f64 {
    let mut sorted = errors.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * 0.99) as usize)
        .copied()
        .filter(|w| *w > 0.0 && w.is_finite())
        .unwrap_or(1.0)
}

/// A value in [0, 1] as a byte, linearly (rounded; clamped, NaN as 0).
fn linear8(v: f64) -> u8 {
    if v.is_finite() {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    } else {
        0
    }
}

/// The sRGB transfer curve of a linear value in [0, 1], quantised to 8 bits.
pub fn srgb8(v: f32) -> u8 {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let s = if v <= 0.003_130_8 {
        12.92 * v
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0 + 0.5) as u8
}

/// Row-major RGB8 sRGB bytes of a linear image.
pub fn to_srgb8(image: &[Rgb], tone: ToneMap) -> Vec<u8> {
    // On all cores: three `powf` a pixel took 50 ms on one core at 1920×1080, after every pass
    // while every rank waited for the next one.
    let pixels: Vec<[u8; 3]> = image
        .par_iter()
        .map(|&c| {
            let m = tone.apply(c);
            [srgb8(m.x), srgb8(m.y), srgb8(m.z)]
        })
        .collect();
    pixels.into_flattened()
}

/// Writes `path` whole or not at all (see [`crate::replace`]): a run killed mid-write leaves
/// the previous pass's image intact. Errors name `path`.
fn replace_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), OutputError>,
) -> Result<(), OutputError> {
    crate::replace::replace_atomically(path, write, |action, source| OutputError::Replace {
        path: path.to_path_buf(),
        action,
        source,
    })
}

fn write_png_bytes(
    path: &Path,
    width: u32,
    height: u32,
    color: png::ColorType,
    data: &[u8],
    data_note: Option<&str>,
) -> Result<(), OutputError> {
    replace_atomically(path, |tmp| {
        encode_png(tmp, path, width, height, color, data, data_note)
    })
}

/// Encodes into a new file `tmp`, naming `path` in errors.
fn encode_png(
    tmp: &Path,
    path: &Path,
    width: u32,
    height: u32,
    color: png::ColorType,
    data: &[u8],
    data_note: Option<&str>,
) -> Result<(), OutputError> {
    let file = File::create(tmp).map_err(|e| OutputError::Create {
        path: path.to_path_buf(),
        source: crate::replace::naming(tmp, e),
    })?;
    let png_err = |source| OutputError::Png {
        path: path.to_path_buf(),
        source,
    };
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    // The image is written after every pass while every rank waits for the next one: the
    // fast deflate encodes a 256² render in about 1 ms instead of 18 ms (Balanced), for a file
    // 0.1 % larger (noisy renders barely compress either way).
    encoder.set_compression(png::Compression::Fast);
    match data_note {
        // Values to read back, not a picture: linear (gamma 1), with what they mean.
        Some(note) => {
            encoder.set_source_gamma(png::ScaledFloat::new(1.0));
            encoder
                .add_text_chunk("Comment".to_string(), note.to_string())
                .map_err(png_err)?;
        }
        None => encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual),
    }
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(data).map_err(png_err)?;
    writer.finish().map_err(png_err)
}

/// Writes the film's mean radiance as an 8-bit sRGB PNG after `tone` mapping.
pub fn write_png(film: &Film, path: &Path, tone: ToneMap) -> Result<(), OutputError> {
    let bytes = to_srgb8(&film.mean_image(), tone);
    write_png_bytes(
        path,
        film.width(),
        film.height(),
        png::ColorType::Rgb,
        &bytes,
        None,
    )
}

fn write_exr_image(path: &Path, width: u32, image: &[Rgb]) -> Result<(), OutputError> {
    use exr::prelude::{
        Blocks, Compression, Encoding, Image, LineOrder, SpecificChannels, Vec2, WritableImage,
    };
    let w = width as usize;
    let h = image.len() / w.max(1);
    let channels = SpecificChannels::rgb(|Vec2(x, y)| {
        let c: Rgb = image[y * w + x];
        (c.x, c.y, c.z)
    });
    // Lines in increasing order, compressed on one thread: the same film always gives the same
    // bytes (the crate's default lets blocks land in the order parallel workers finish).
    let encoding = Encoding {
        compression: Compression::ZIP16,
        blocks: Blocks::ScanLines,
        line_order: LineOrder::Increasing,
    };
    replace_atomically(path, |tmp| {
        Image::from_encoded_channels((w, h), encoding, channels)
            .write()
            .non_parallel()
            .to_file(tmp)
            .map_err(|source| OutputError::Exr {
                path: path.to_path_buf(),
                source,
            })
    })
}

/// Writes the film's mean radiance, linear and unclipped, as a 32-bit float OpenEXR.
pub fn write_exr(film: &Film, path: &Path) -> Result<(), OutputError> {
    write_exr_image(path, film.width(), &film.mean_image())
}

/// Writes the per-pixel standard error of the mean (per channel, in radiance units) as a
/// 32-bit float OpenEXR.
pub fn write_error_exr(film: &Film, path: &Path) -> Result<(), OutputError> {
    write_exr_image(path, film.width(), &film.error_image())
}

/// Writes the per-pixel normalised standard error (the quantity the adaptive sampler
/// thresholds) as a grey-scale PNG, linear from black at 0 to white at the 99th percentile
/// of the film's values (so a few outliers do not darken the rest): grey level g (0-255) is an
/// error of g / 255 × white, and brighter values show as white. The file is marked linear
/// (gamma 1, no sRGB chunk) and its `Comment` text chunk states the white value, which is
/// also returned.
pub fn write_error_png(film: &Film, path: &Path) -> Result<f64, OutputError> {
    let errors: Vec<f64> = film.pixels().iter().map(|p| p.normalised_error()).collect();
    let white = error_white(&errors);
    let bytes: Vec<u8> = errors.iter().map(|&e| linear8(e / white)).collect();
    let note = format!(
        "prism error image: grey level g (0-255) is a normalised standard error of g / 255 \
         x {white:e} (white; larger errors are white too)"
    );
    write_png_bytes(
        path,
        film.width(),
        film.height(),
        png::ColorType::Grayscale,
        &bytes,
        Some(&note),
    )?;
    Ok(white)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_curve_and_tone_maps() {
        assert_eq!(srgb8(0.0), 0);
        assert_eq!(srgb8(1.0), 255);
        assert_eq!(srgb8(0.5), 188); // 0.7354 * 255
        assert_eq!(srgb8(f32::NAN), 0);
        let clamp = ToneMap::Clamp { exposure: 2.0 };
        assert_eq!(
            clamp.apply(Rgb::new(0.25, 1.0, -1.0)),
            Rgb::new(0.5, 1.0, 0.0)
        );
        let r = ToneMap::Reinhard { exposure: 1.0 };
        let big = r.apply(Rgb::splat(1000.0));
        assert!(big.x < 1.0 && big.x > 0.99);
        assert_eq!(r.apply(Rgb::splat(f32::INFINITY)), Rgb::ZERO);
    }

    #[test]
    fn srgb_bytes_keep_pixel_order_on_all_cores() {
        // Large enough for the parallel map to split: every pixel's bytes in its place.
        let image: Vec<Rgb> = (0..20_000)
            .map(|i| Rgb::new(i as f32 / 20_000.0, 1.0 - i as f32 / 20_000.0, 0.5))
            .collect();
        let tone = ToneMap::default();
        let bytes = to_srgb8(&image, tone);
        assert_eq!(bytes.len(), 3 * image.len());
        for (i, c) in image.iter().enumerate() {
            let m = tone.apply(*c);
            assert_eq!(
                bytes[3 * i..3 * i + 3],
                [srgb8(m.x), srgb8(m.y), srgb8(m.z)],
                "pixel {i}"
            );
        }
    }

    fn test_film() -> Film {
        use crate::stats::PixelStats;
        use crate::tile::{PixelMask, TileId, TileRect, TileResult};
        let (w, h) = (5u32, 3u32);
        let stats = (0..w * h)
            .map(|i| {
                let mut s = PixelStats::default();
                let v = f64::from(i) * 0.37;
                s.add_sample([v, 2.0 * v, 0.1]);
                s.add_sample([v * 1.5, v, 0.3]);
                s
            })
            .collect();
        let mut film = Film::new(w, h).unwrap();
        film.merge(&TileResult {
            id: TileId { pass: 0, tile: 0 },
            rect: TileRect {
                x: 0,
                y: 0,
                width: w,
                height: h,
            },
            pixels: PixelMask::All,
            stats,
            ray_count: 0,
        })
        .unwrap();
        film
    }

    #[test]
    fn files_round_trip_and_are_byte_stable() {
        let film = test_film();
        let dir = tempfile::tempdir().unwrap();
        let exr_a = dir.path().join("a.exr");
        let exr_b = dir.path().join("b.exr");
        write_exr(&film, &exr_a).unwrap();
        write_exr(&film, &exr_b).unwrap();
        assert_eq!(
            std::fs::read(&exr_a).unwrap(),
            std::fs::read(&exr_b).unwrap()
        );
        // Linear f32 values come back exactly.
        let (w, h) = (film.width() as usize, film.height() as usize);
        let read = exr::prelude::read_first_rgba_layer_from_file(
            &exr_a,
            |size, _| vec![[0f32; 3]; size.0 * size.1],
            move |px: &mut Vec<[f32; 3]>, pos, (r, g, b, _a): (f32, f32, f32, f32)| {
                px[pos.1 * w + pos.0] = [r, g, b];
            },
        )
        .unwrap();
        let pixels = read.layer_data.channel_data.pixels;
        assert_eq!(pixels.len(), w * h);
        for (got, want) in pixels.iter().zip(film.mean_image()) {
            assert_eq!(*got, want.to_array());
        }
        let err_path = dir.path().join("err.exr");
        write_error_exr(&film, &err_path).unwrap();
        assert!(std::fs::metadata(&err_path).unwrap().len() > 0);

        let png_path = dir.path().join("a.png");
        write_png(&film, &png_path, ToneMap::default()).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(File::open(&png_path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (film.width(), film.height()));
        assert_eq!(
            &buf[..info.buffer_size()],
            &to_srgb8(&film.mean_image(), ToneMap::default())[..]
        );

        let grey = dir.path().join("err.png");
        let white = write_error_png(&film, &grey).unwrap();
        assert!(white > 0.0 && white.is_finite());
        // Grey levels read back as errors, linearly; the file says so and gives the white.
        let decoder = png::Decoder::new(std::io::BufReader::new(File::open(&grey).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        let info = reader.info();
        assert!(info.srgb.is_none());
        let comment = &info.uncompressed_latin1_text[0];
        assert_eq!(comment.keyword, "Comment");
        assert!(
            comment.text.contains(&format!("{white:e}")),
            "{}",
            comment.text
        );
        for (&g, p) in buf.iter().zip(film.pixels()) {
            let e = p.normalised_error();
            let want = (e / white).min(1.0);
            assert!(
                (f64::from(g) / 255.0 - want).abs() <= 0.5 / 255.0,
                "{g} for {e}"
            );
        }
    }

    #[test]
    fn a_file_that_cannot_be_replaced_says_which_step_failed() {
        // A directory where the image goes: the new file is written, its rename fails.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("busy.png");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"x").unwrap();
        let e = write_png(&Film::new(2, 2).unwrap(), &target, ToneMap::default()).unwrap_err();
        let said = e.to_string();
        assert!(
            said.starts_with(&format!(
                "cannot rename the temporary file into place for {}: ",
                target.display()
            )),
            "{said}"
        );
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn errors_name_the_file() {
        let film = Film::new(2, 2).unwrap();
        let path = Path::new("/nonexistent-dir/out.png");
        let e = write_png(&film, path, ToneMap::default()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/out.png"), "{e}");
        let e = write_exr(&film, Path::new("/nonexistent-dir/out.exr")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/out.exr"), "{e}");
    }

    #[test]
    fn a_failed_write_keeps_the_previous_image_and_leaves_no_temporary_file() {
        let film = test_film();
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("x.png");
        write_png(&film, &png, ToneMap::default()).unwrap();
        let before = std::fs::read(&png).unwrap();
        // The encoder fails midway: the image is wider than its data.
        let e = write_png_bytes(&png, 1000, 1000, png::ColorType::Rgb, &[0; 30], None).unwrap_err();
        assert!(e.to_string().contains("x.png"), "{e}");
        assert_eq!(std::fs::read(&png).unwrap(), before);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.png")]);
    }
}
