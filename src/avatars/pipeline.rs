//! The image pipeline of an uploaded avatar (OWASP File Upload cheat sheet): the format is
//! told by the bytes alone (PNG, JPEG, WebP; nothing else), the dimensions are read from the
//! header before anything is decoded, decoding runs under pixel and allocation limits, and
//! the picture is centre-cropped, resized to the fixed square sizes and re-encoded. The
//! re-encoding is what strips EXIF, GPS, XMP, ICC and every other ancillary chunk: only
//! pixels cross over.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// The sizes served, in pixels per side. Every size exists for every avatar: a smaller
/// original is scaled up to each (and the owner warned, see [`MIN_SIDE`]).
pub const SIZES: [u32; 4] = [64, 128, 256, 512];

/// The help page asks for at least this many pixels per side; below it the upload is kept
/// with a warning.
pub const MIN_SIDE: u32 = 210;

/// Longest side of an image accepted, in pixels, as read from its header.
pub const MAX_SIDE: u32 = 8192;

/// Most pixels accepted (40 megapixels), as read from its header.
pub const MAX_PIXELS: u64 = 40_000_000;

/// Most memory one decode may allocate.
pub const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// The quality of the JPEGs served: photographs stay sharp at a fraction of a PNG's size.
const JPEG_QUALITY: u8 = 85;

/// The media type of every size served.
pub const MEDIA_TYPE: &str = "image/jpeg";

/// Why an upload is not an avatar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageProblem {
    #[error("the body is empty")]
    Empty,
    /// Neither PNG, JPEG nor WebP by its first bytes (SVG, HTML, GIF, …), whatever its name
    /// or declared type.
    #[error("not a PNG, JPEG or WebP image")]
    UnsupportedFormat,
    /// The header claims more pixels than accepted ([`MAX_SIDE`], [`MAX_PIXELS`]); nothing
    /// was decoded.
    #[error("too many pixels")]
    TooManyPixels,
    /// Truncated, corrupt, or refused by the decoder's limits.
    #[error("the image cannot be decoded")]
    Undecodable,
}

/// The formats accepted, told by their signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    WebP,
}

impl Format {
    fn image_format(self) -> ImageFormat {
        match self {
            Format::Png => ImageFormat::Png,
            Format::Jpeg => ImageFormat::Jpeg,
            Format::WebP => ImageFormat::WebP,
        }
    }
}

/// The format of an upload by its magic bytes: PNG's 8-byte signature, JPEG's SOI marker
/// followed by another marker, or a RIFF container of type `WEBP`.
pub fn sniff(bytes: &[u8]) -> Result<Format, ImageProblem> {
    if bytes.is_empty() {
        return Err(ImageProblem::Empty);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(Format::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(Format::Jpeg)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Ok(Format::WebP)
    } else {
        Err(ImageProblem::UnsupportedFormat)
    }
}

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    limits
}

/// The width and height the header declares, read without decoding a pixel; refused past
/// [`MAX_SIDE`] or [`MAX_PIXELS`] (a tiny file may claim 100 000 × 100 000).
pub fn dimensions(bytes: &[u8], format: Format) -> Result<(u32, u32), ImageProblem> {
    // The header is read under the default limits (no bound on the sides) so that a large
    // claim is told apart from a broken header.
    let reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    match reader.into_dimensions() {
        Ok((width, height)) => check_dimensions(width, height).map(|()| (width, height)),
        Err(image::ImageError::Limits(_)) => Err(ImageProblem::TooManyPixels),
        Err(_) => Err(ImageProblem::Undecodable),
    }
}

fn check_dimensions(width: u32, height: u32) -> Result<(), ImageProblem> {
    if width == 0 || height == 0 {
        return Err(ImageProblem::Undecodable);
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageProblem::TooManyPixels);
    }
    Ok(())
}

/// An avatar ready to be stored: each of [`SIZES`] as a JPEG, in that order.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub images: Vec<(u32, Vec<u8>)>,
    /// The original's shorter side was below [`MIN_SIDE`].
    pub small: bool,
}

/// Decodes (under the limits), turns upright (the EXIF orientation, read before the EXIF is
/// dropped), centre-crops to a square, resizes to each of [`SIZES`] and re-encodes. CPU-heavy:
/// call it on a blocking thread.
pub fn process(bytes: &[u8], format: Format) -> Result<Encoded, ImageProblem> {
    let (width, height) = dimensions(bytes, format)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(limits());
    let mut decoder = reader
        .into_decoder()
        .map_err(|_| ImageProblem::Undecodable)?;
    if decoder.dimensions() != (width, height) || decoder.total_bytes() > MAX_ALLOC {
        return Err(ImageProblem::Undecodable);
    }
    let orientation = decoder.orientation().ok();
    let mut picture = DynamicImage::from_decoder(decoder).map_err(|_| ImageProblem::Undecodable)?;
    if let Some(orientation) = orientation {
        picture.apply_orientation(orientation);
    }
    let side = picture.width().min(picture.height());
    let small = side < MIN_SIDE;
    // Through `DynamicImage`'s own methods: compiled once, optimized, in the image crate.
    if picture.color().has_alpha() {
        picture = DynamicImage::ImageRgb8(flatten_on_white(&picture.into_rgba8()));
    } else if !matches!(picture, DynamicImage::ImageRgb8(_)) {
        picture = DynamicImage::ImageRgb8(picture.into_rgb8());
    }
    let mut square = picture.crop_imm(
        (picture.width() - side) / 2,
        (picture.height() - side) / 2,
        side,
        side,
    );
    drop(picture);
    let largest = SIZES[SIZES.len() - 1];
    // A large picture is first averaged down to twice the largest size (fast), so that the
    // Lanczos filter's cost stays the same whatever the original's size.
    if side > 2 * largest {
        square = square.thumbnail_exact(2 * largest, 2 * largest);
    }
    let top = square.resize_exact(largest, largest, FilterType::Lanczos3);
    drop(square);
    let mut images = Vec::with_capacity(SIZES.len());
    for size in SIZES {
        let encoded = if size == largest {
            encode_jpeg(&top)?
        } else {
            encode_jpeg(&top.resize_exact(size, size, FilterType::Lanczos3))?
        };
        images.push((size, encoded));
    }
    Ok(Encoded { images, small })
}

/// JPEG has no transparency: transparent pixels become white, as on the account pages.
fn flatten_on_white(rgba: &image::RgbaImage) -> RgbImage {
    let over = |c: u8, a: u8| {
        let (c, a) = (u16::from(c), u16::from(a));
        ((c * a + 255 * (255 - a) + 127) / 255) as u8
    };
    let mut rgb = Vec::with_capacity(rgba.as_raw().len() / 4 * 3);
    for pixel in rgba.as_raw().chunks_exact(4) {
        let a = pixel[3];
        rgb.extend_from_slice(&[over(pixel[0], a), over(pixel[1], a), over(pixel[2], a)]);
    }
    RgbImage::from_raw(rgba.width(), rgba.height(), rgb).unwrap_or_default()
}

fn encode_jpeg(picture: &DynamicImage) -> Result<Vec<u8>, ImageProblem> {
    let converted;
    let rgb = match picture.as_rgb8() {
        Some(rgb) => rgb,
        None => {
            converted = picture.to_rgb8();
            &converted
        }
    };
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|_| ImageProblem::Undecodable)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([
                (x % 256) as u8,
                (y % 256) as u8,
                90,
                if x < 3 { 0 } else { 255 },
            ])
        });
        let mut out = Cursor::new(Vec::new());
        picture.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn formats_are_told_by_their_bytes_only() {
        assert_eq!(sniff(&png(2, 2)), Ok(Format::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]), Ok(Format::Jpeg));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8L"), Ok(Format::WebP));
        assert_eq!(sniff(b""), Err(ImageProblem::Empty));
        for refused in [
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"[..],
            b"<!doctype html><script>alert(1)</script>",
            b"GIF89a\x01\0\x01\0",
            b"RIFF\x10\0\0\0WAVEfmt ",
            b"\x89PNG\r\n",
            b"BM\0\0",
        ] {
            assert_eq!(sniff(refused), Err(ImageProblem::UnsupportedFormat));
        }
    }

    #[test]
    fn a_picture_becomes_every_size_square_and_a_small_one_is_flagged() {
        let encoded = process(&png(300, 240), Format::Png).unwrap();
        assert!(!encoded.small);
        let sizes: Vec<u32> = encoded.images.iter().map(|(s, _)| *s).collect();
        assert_eq!(sizes, SIZES);
        for (size, bytes) in &encoded.images {
            let decoded = image::load_from_memory_with_format(bytes, ImageFormat::Jpeg).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (*size, *size));
        }
        assert!(process(&png(100, 100), Format::Png).unwrap().small);
        assert!(process(&png(1, 1), Format::Png).unwrap().small);
    }

    /// A wide picture keeps its middle: red sides, a blue centre square, a blue avatar
    /// (through the fast pre-shrink of large pictures too).
    #[test]
    fn the_square_is_cut_from_the_centre() {
        for (width, height) in [(900, 300), (3300, 1100)] {
            let third = width / 3;
            let picture = image::RgbImage::from_fn(width, height, |x, _| {
                image::Rgb(if x < third || x >= 2 * third {
                    [255, 0, 0]
                } else {
                    [0, 0, 255]
                })
            });
            let mut out = Cursor::new(Vec::new());
            picture.write_to(&mut out, ImageFormat::Png).unwrap();
            let encoded = process(&out.into_inner(), Format::Png).unwrap();
            let (size, jpeg) = &encoded.images[0];
            let served = image::load_from_memory(jpeg).unwrap().to_rgb8();
            for (x, y) in [(0, 0), (size - 1, 0), (size / 2, size / 2), (0, size - 1)] {
                let [r, _, b] = served.get_pixel(x, y).0;
                assert!(b > 200 && r < 60, "{width}×{height} at {x},{y}: {r} {b}");
            }
        }
    }

    #[test]
    fn transparency_becomes_white() {
        let flat = flatten_on_white(&image::RgbaImage::from_pixel(
            1,
            1,
            image::Rgba([0, 0, 0, 0]),
        ));
        assert_eq!(flat.get_pixel(0, 0).0, [255, 255, 255]);
    }

    #[test]
    fn header_limits_are_checked_before_decoding() {
        assert_eq!(check_dimensions(8192, 4096), Ok(()));
        assert_eq!(check_dimensions(8193, 10), Err(ImageProblem::TooManyPixels));
        assert!(check_dimensions(8000, 8000).is_err(), "64 Mpx");
        assert_eq!(check_dimensions(0, 10), Err(ImageProblem::Undecodable));
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(256))]

        /// Sniffing and reading the header never panic, whatever the bytes.
        #[test]
        fn fuzz_avatar_sniff_and_dimensions(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(format) = sniff(&bytes) {
                let _ = dimensions(&bytes, format);
            }
        }

        /// Real headers, mutated: the header reader and the decoder refuse or succeed, and
        /// never panic.
        #[test]
        fn fuzz_avatar_mutated_images(
            which in 0usize..3,
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = match which {
                0 => png(7, 5),
                1 => {
                    let mut out = Cursor::new(Vec::new());
                    image::RgbImage::new(7, 5).write_to(&mut out, ImageFormat::Jpeg).unwrap();
                    out.into_inner()
                }
                _ => {
                    let mut out = Cursor::new(Vec::new());
                    image::RgbaImage::new(7, 5).write_to(&mut out, ImageFormat::WebP).unwrap();
                    out.into_inner()
                }
            };
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            bytes.truncate(cut.index(bytes.len() + 1).max(1));
            if let Ok(format) = sniff(&bytes) {
                let _ = process(&bytes, format);
            }
        }
    }
}
