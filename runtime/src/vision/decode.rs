//! Image file or bytes -> pixels in the mode Pillow would have opened them in.
//!
//! Why it is built this way:
//!
//! * **The Pillow mode decides everything downstream.** The reference resizes an image in the
//!   mode Pillow opened it in and converts to RGB afterwards (see [`super::tiling`]), so a decoded
//!   image carries that mode, not just samples. The `image` crate decodes the pixels, but its
//!   colour type loses what Pillow keys on (palette vs RGB, 1-bit vs 8-bit grey, a grey-ramp
//!   palette that Pillow calls `L`). Those facts are read from the file header, and
//!   [`DecodedImage`] converts the samples the way Pillow's unpackers do: 16-bit RGB(A) keeps the
//!   high byte, which is a truncation, not a rounding.
//! * **The codec crates read the headers; by hand only what they do not tell.** PNG's IHDR comes
//!   from the `png` crate (`read_header_info`: size, bit depth, colour type); GIF's logical
//!   screen, palettes, first frame rectangle and transparency index from the `gif` crate
//!   (`read_info` + `next_frame_info`, which stop before any pixel data); BMP's size and palette
//!   from `image`'s `BmpDecoder`. Left by hand, each because no library gives it:
//!   - the BMP palette *length* (bit count and colours-used fields): `BmpDecoder` pads its
//!     palette to 256 entries and keeps both fields private, while Pillow's grey-ramp rule
//!     compares exactly that many entries;
//!   - the JPEG end-of-image walk: zune-jpeg quietly grey-fills a file cut inside its scan data
//!     where Pillow refuses it as truncated, and no decoder API says whether EOI was reached;
//!   - completing a PNG cut after its last IDAT byte: Pillow never reads the IDAT CRC or IEND,
//!     the `png` crate insists on both (the CRC itself comes from `crc32fast`);
//!   - a PNG header with a zero width or height: the `png` crate refuses it without saying which,
//!     so the two IHDR fields are read back to report [`PreprocessError::ZeroSized`].
//! * **EXIF orientation is not applied**, on purpose: the reference calls `Image.open` and never
//!   `ImageOps.exif_transpose`, so it tiles the stored pixel grid. Rotating here would make a
//!   different tile grid than the reference for every rotated phone photo.
//! * **Hostile files fail early with a typed error.** Before any pixel is decoded, the dimensions
//!   are read from the header and checked: a pixel budget ([`ImageLimits`], default
//!   [`DEFAULT_MAX_PIXELS`]), zero sizes, and absurd aspect ratios ([`MAX_ASPECT_RATIO`]). Empty,
//!   truncated, corrupt and unsupported files become [`PreprocessError`] variants that name the
//!   file; nothing panics. The aspect limit is deliberately loose. Pillow 13 resizes a 1xN strip at
//!   a cost linear in N, and SAIL's tiling just picks the most elongated grid, so strips are
//!   refused only when they are both extreme (over 1000:1) and long (over 4096 px). Only there
//!   would the filter tables grow with the long side while the content is squashed into slivers.
//!   A 1024x1 colour map or a 1000x10 banner goes through as in the reference.
//!
//! Known limits of the "exact" claim (details on [`load_image`]): JPEGs are decoded by
//! zune-jpeg, not Pillow's libjpeg-turbo, so their pixels differ by a few levels before any
//! preprocessing (chroma upsampling and IDCT rounding); lossy WebP is decoded by image-webp
//! (identical to libwebp on the test corpus, not guaranteed). CMYK JPEGs arrive already
//! converted to RGB. GIFs whose first frame overflows the logical screen keep the screen size.
//! Lossless formats match Pillow exactly.

use std::fmt;
use std::io::{Cursor, ErrorKind};
use std::path::Path;

use image::codecs::bmp::BmpDecoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

/// Default pixel budget: 64 Mi pixels (e.g. 8192 x 8192), checked from the header before decoding.
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 26;

/// What an image may cost. One value flows from the caller's flag or parameter to the decoder
/// (checked from the header, before any pixel is decoded) and to the tiler, so both enforce the
/// same budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// Most pixels (width × height) an image may have.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_pixels: DEFAULT_MAX_PIXELS }
    }
}

/// Long side : short side beyond which a *long* image is refused (see [`MAX_ASPECT_FREE_SIDE`]).
pub const MAX_ASPECT_RATIO: u64 = 1000;
/// Images whose long side is at most this are never refused for their shape: they are cheap, and
/// the reference handles them.
pub const MAX_ASPECT_FREE_SIDE: u64 = 4096;

const MEMORY_NAME: &str = "<memory>";

/// Everything that can go wrong between a file and its tiles. Every variant about an image names
/// its source (`file`: the path, or `<memory>`).
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    // The I/O error is part of the message and deliberately not a `source`: printed with its
    // chain, it would appear twice.
    #[error("{file}: cannot read image: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}: the file is empty")]
    Empty { file: String },
    #[error("{file}: unsupported image format ({detail}); supported: JPEG, PNG, WebP, BMP, GIF")]
    UnsupportedFormat { file: String, detail: String },
    #[error("{file}: the image has a zero dimension ({width}x{height})")]
    ZeroSized { file: String, width: u32, height: u32 },
    #[error("{file}: {width}x{height} is {pixels} pixels, over the budget of {max_pixels}")]
    TooManyPixels { file: String, width: u32, height: u32, pixels: u64, max_pixels: u64 },
    #[error("{file}: {width}x{height} has an absurd aspect ratio (over {max_ratio}:1 with a side over {free_side} px)")]
    AbsurdAspectRatio { file: String, width: u32, height: u32, max_ratio: u64, free_side: u64 },
    #[error("{file}: the file is {bytes} bytes, too large for a pixel budget of {max_pixels}")]
    FileTooLarge { file: String, bytes: u64, max_pixels: u64 },
    #[error("{file}: truncated {format} data ({detail})")]
    Truncated { file: String, format: &'static str, detail: String },
    #[error("{file}: corrupt or malformed {format} data: {detail}")]
    Malformed { file: String, format: &'static str, detail: String },
    #[error("{file}: {detail}")]
    ResourceLimit { file: String, detail: String },
    #[error("{file}: pixel buffer of {len} bytes does not match {width}x{height} {mode}")]
    BadBuffer { file: String, len: usize, width: u32, height: u32, mode: PilMode },
    #[error("invalid preprocessing configuration: {0}")]
    InvalidConfig(String),
}

/// The pixel mode Pillow gives an opened image. It decides how the reference resizes it
/// (bicubic, premultiplied bicubic, nearest, 16-bit bicubic) and how it becomes RGB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PilMode {
    /// "L": 8-bit grey.
    L,
    /// "LA": grey + alpha (premultiplied resize).
    La,
    /// "RGB".
    Rgb,
    /// "RGBA" (premultiplied resize).
    Rgba,
    /// "P": palette. Stored here already expanded to RGB; resized with nearest neighbour, which
    /// commutes with the palette lookup.
    P,
    /// "1": bilevel, stored as 0/255; resized with nearest neighbour.
    Bilevel,
    /// "I;16": 16-bit grey; resized in 16 bits, clipped to 0..=255 when converted to RGB.
    I16,
}

impl PilMode {
    /// Pillow's name for the mode.
    pub fn pil_name(self) -> &'static str {
        match self {
            PilMode::L => "L",
            PilMode::La => "LA",
            PilMode::Rgb => "RGB",
            PilMode::Rgba => "RGBA",
            PilMode::P => "P",
            PilMode::Bilevel => "1",
            PilMode::I16 => "I;16",
        }
    }

    /// Samples per pixel in [`DecodedImage`]'s storage.
    pub fn channels(self) -> usize {
        match self {
            PilMode::L | PilMode::Bilevel | PilMode::I16 => 1,
            PilMode::La => 2,
            PilMode::Rgb | PilMode::P => 3,
            PilMode::Rgba => 4,
        }
    }
}

impl fmt::Display for PilMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pil_name())
    }
}

#[derive(Clone)]
pub(super) enum Pixels {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// A decoded image in its Pillow mode, ready for [`super::preprocess`].
#[derive(Clone)]
pub struct DecodedImage {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) mode: PilMode,
    pub(super) pixels: Pixels,
    format: Option<ImageFormat>,
    pub(super) source: String,
}

impl fmt::Debug for DecodedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodedImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("mode", &self.mode)
            .field("format", &self.format)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl DecodedImage {
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    /// The mode Pillow would have opened the file in.
    pub fn mode(&self) -> PilMode {
        self.mode
    }
    /// The container format, when the image came from a file.
    pub fn format(&self) -> Option<ImageFormat> {
        self.format
    }
    /// The file name errors use (the path, or `<memory>`).
    pub fn source(&self) -> &str {
        &self.source
    }
    /// Interleaved 8-bit samples ([`PilMode::channels`] per pixel); `None` for `I;16`.
    pub fn samples_u8(&self) -> Option<&[u8]> {
        match &self.pixels {
            Pixels::U8(v) => Some(v),
            Pixels::U16(_) => None,
        }
    }
    /// 16-bit samples of an `I;16` image.
    pub fn samples_u16(&self) -> Option<&[u16]> {
        match &self.pixels {
            Pixels::U16(v) => Some(v),
            Pixels::U8(_) => None,
        }
    }

    /// Pillow's `convert("RGB")` of this image: interleaved RGB, `width * height * 3` bytes.
    pub fn to_rgb8(&self) -> Vec<u8> {
        to_rgb(self.mode, &self.pixels)
    }
}

/// Builds an RGB image from a raw interleaved buffer (camera frames, already-decoded pictures).
pub fn from_rgb8(width: u32, height: u32, data: &[u8]) -> Result<DecodedImage, PreprocessError> {
    from_pixels_u8(PilMode::Rgb, width, height, data.to_vec())
}

/// Builds an image of an 8-bit mode from interleaved samples ([`PilMode::channels`] per pixel;
/// `P` takes palette-expanded RGB, `1` takes 0/255). Not for `I;16` (see [`from_gray16`]).
pub fn from_pixels_u8(mode: PilMode, width: u32, height: u32, data: Vec<u8>) -> Result<DecodedImage, PreprocessError> {
    let name = MEMORY_NAME;
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSized { file: name.into(), width, height });
    }
    let want = (width as usize).checked_mul(height as usize).and_then(|p| p.checked_mul(mode.channels()));
    if mode == PilMode::I16 || want != Some(data.len()) {
        return Err(PreprocessError::BadBuffer { file: name.into(), len: data.len(), width, height, mode });
    }
    Ok(DecodedImage { width, height, mode, pixels: Pixels::U8(data), format: None, source: MEMORY_NAME.into() })
}

/// Builds an `I;16` image from 16-bit grey samples.
pub fn from_gray16(width: u32, height: u32, data: Vec<u16>) -> Result<DecodedImage, PreprocessError> {
    let name = MEMORY_NAME;
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSized { file: name.into(), width, height });
    }
    if Some(data.len()) != (width as usize).checked_mul(height as usize) {
        return Err(PreprocessError::BadBuffer { file: name.into(), len: data.len() * 2, width, height, mode: PilMode::I16 });
    }
    Ok(DecodedImage { width, height, mode: PilMode::I16, pixels: Pixels::U16(data), format: None, source: MEMORY_NAME.into() })
}

/// Checks dimensions against the hostile-input limits: zero sizes, the pixel budget, and absurd
/// aspect ratios (long side over [`MAX_ASPECT_RATIO`] times the short side *and* over
/// [`MAX_ASPECT_FREE_SIDE`]). `file` names the source in the error.
pub fn check_dimensions(file: &str, width: u32, height: u32, max_pixels: u64) -> Result<(), PreprocessError> {
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSized { file: file.into(), width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(PreprocessError::TooManyPixels { file: file.into(), width, height, pixels, max_pixels });
    }
    let long = u64::from(width.max(height));
    let short = u64::from(width.min(height));
    if long > MAX_ASPECT_FREE_SIDE && long > MAX_ASPECT_RATIO * short {
        return Err(PreprocessError::AbsurdAspectRatio {
            file: file.into(),
            width,
            height,
            max_ratio: MAX_ASPECT_RATIO,
            free_side: MAX_ASPECT_FREE_SIDE,
        });
    }
    Ok(())
}

/// Reads and decodes an image file (JPEG, PNG, WebP, BMP, GIF first frame) into its Pillow mode.
///
/// The header is checked before decoding (see [`check_dimensions`]) against `limits`, the same
/// budget the tiler is given (`ImageLimits::default()` is [`DEFAULT_MAX_PIXELS`]).
///
/// Modes, as Pillow opens them: PNG grey 1-bit -> `1`, grey 2/4/8-bit -> `L`, grey 16-bit ->
/// `I;16`, RGB 8/16-bit -> `RGB`, palette -> `P`, grey+alpha 8-bit -> `LA`, grey+alpha 16-bit and
/// RGBA -> `RGBA` (16-bit samples keep their high byte; `tRNS` transparency is ignored as Pillow's
/// `convert("RGB")` ignores it). BMP <= 8 bpp -> `P`, or `L`/`1` when the palette is the identity
/// grey ramp; 32-bit BMP -> `RGB` unless its bit fields carry alpha. GIF -> `P`, or `L` when the
/// palette is the identity grey ramp; pixels outside the first frame take the palette colour of
/// the transparency index (or index 0), as in Pillow. JPEG -> `L` or `RGB`; WebP -> `RGB` or
/// `RGBA`.
///
/// Not reproduced exactly: lossy JPEG/WebP pixels come from other decoders than Pillow's
/// (differences of a few levels are normal); CMYK/YCCK JPEGs are converted to RGB by the decoder
/// (Pillow resizes them in CMYK; an approximation); 16-bit-per-pixel BMPs may round their 5/6-bit
/// channels differently; a GIF whose first frame extends past its logical screen keeps the screen
/// size (Pillow grows the canvas); a PNG with a corrupt IDAT CRC is refused (Pillow does not check
/// it). EXIF orientation is never applied (the reference does not apply it either).
///
/// Truncation follows Pillow: a file cut inside pixel data is [`PreprocessError::Truncated`], but
/// a PNG cut only in its IDAT CRC / IEND trailer is accepted, as Pillow accepts it; a JPEG must
/// reach its end-of-image marker.
pub fn load_image(path: &Path, limits: ImageLimits) -> Result<DecodedImage, PreprocessError> {
    let bytes = read_image_file(path, limits)?;
    decode_bytes(&bytes, &path.display().to_string(), limits.max_pixels)
}

/// Reads an image file's bytes, undecoded, refusing files too large for the pixel budget before
/// reading them (the check [`load_image`] makes).
pub fn read_image_file(path: &Path, limits: ImageLimits) -> Result<Vec<u8>, PreprocessError> {
    let max_pixels = limits.max_pixels;
    let file = path.display().to_string();
    let io_err = |error| PreprocessError::Io { file: file.clone(), error };
    // a regular file, opened without blocking (a FIFO is refused, not waited on)
    let f = sail_format::files::open_input(path).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    let cap = max_file_bytes(max_pixels);
    if len > cap {
        return Err(PreprocessError::FileTooLarge { file, bytes: len, max_pixels });
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| PreprocessError::ResourceLimit { file: file.clone(), detail: format!("cannot hold {len} bytes") })?;
    std::io::Read::read_to_end(&mut std::io::Read::take(f, cap), &mut bytes).map_err(io_err)?;
    Ok(bytes)
}

/// [`load_image`] for an in-memory file; errors name it `<memory>`.
pub fn load_image_from_memory(bytes: &[u8], limits: ImageLimits) -> Result<DecodedImage, PreprocessError> {
    load_image_from_memory_named(bytes, MEMORY_NAME, limits)
}

/// [`load_image`] for an in-memory file, with the name errors should use.
pub fn load_image_from_memory_named(bytes: &[u8], name: &str, limits: ImageLimits) -> Result<DecodedImage, PreprocessError> {
    let max_pixels = limits.max_pixels;
    if bytes.len() as u64 > max_file_bytes(max_pixels) {
        return Err(PreprocessError::FileTooLarge { file: name.into(), bytes: bytes.len() as u64, max_pixels });
    }
    decode_bytes(bytes, name, max_pixels)
}

/// No supported format needs more than 16 bytes per pixel (16-bit RGBA PNG with stored deflate
/// blocks is ~8); the slack covers metadata such as ICC profiles and EXIF thumbnails.
fn max_file_bytes(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(16).saturating_add(64 << 20)
}

/// Pillow's `convert("RGB")` from each mode.
pub(super) fn to_rgb(mode: PilMode, pixels: &Pixels) -> Vec<u8> {
    match pixels {
        Pixels::U16(v) => v.iter().flat_map(|&x| [x.min(255) as u8; 3]).collect(),
        Pixels::U8(v) => match mode {
            PilMode::Rgb | PilMode::P => v.clone(),
            PilMode::Rgba => v.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
            PilMode::La => v.chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(),
            PilMode::L | PilMode::Bilevel | PilMode::I16 => v.iter().flat_map(|&x| [x; 3]).collect(),
        },
    }
}

// ----------------------------------------------------------------------------------------------
// Decoding

/// What the file header says about Pillow's mode, where the decoded colour type does not.
#[derive(Clone, Debug)]
enum Probe {
    Png {
        bit_depth: png::BitDepth,
        color_type: png::ColorType,
    },
    /// `mode` is `Some` for palette images (<= 8 bpp); `None` means "from the decoded type".
    Bmp {
        mode: Option<PilMode>,
    },
    Gif(GifProbe),
    Other,
}

#[derive(Clone, Debug)]
struct GifProbe {
    /// The first frame's effective palette when Pillow keeps one (mode `P`); `None` -> mode `L`.
    palette: Option<Vec<u8>>,
    frame: (u32, u32, u32, u32),
    fill_index: u8,
}

/// The file being decoded: its name and format for errors, and the pixel budget.
struct Source<'a> {
    file: &'a str,
    format: &'static str,
    max_pixels: u64,
}

impl Source<'_> {
    fn truncated(&self, detail: impl Into<String>) -> PreprocessError {
        PreprocessError::Truncated { file: self.file.into(), format: self.format, detail: detail.into() }
    }
    fn malformed(&self, detail: impl Into<String>) -> PreprocessError {
        PreprocessError::Malformed { file: self.file.into(), format: self.format, detail: detail.into() }
    }
    /// The hostile-input checks on header dimensions; returns them for later comparison.
    fn check(&self, width: u32, height: u32) -> Result<(u32, u32), PreprocessError> {
        check_dimensions(self.file, width, height, self.max_pixels)?;
        Ok((width, height))
    }
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Gif => "GIF",
        _ => "image",
    }
}

fn decode_bytes(bytes: &[u8], file: &str, max_pixels: u64) -> Result<DecodedImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty { file: file.into() });
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Bmp | ImageFormat::Gif)) => f,
        Ok(other) => {
            return Err(PreprocessError::UnsupportedFormat { file: file.into(), detail: format!("{other:?}") });
        }
        Err(_) => {
            return Err(PreprocessError::UnsupportedFormat { file: file.into(), detail: "unrecognised file signature".into() });
        }
    };
    let src = Source { file, format: format_name(format), max_pixels };

    // The header read: dimensions (checked before the decoder allocates anything) and the facts
    // that decide Pillow's mode.
    let (probe, header_dims) = match format {
        ImageFormat::Png => probe_png(bytes, &src).map(|(p, d)| (p, Some(d)))?,
        ImageFormat::Bmp => probe_bmp(bytes, &src).map(|(p, d)| (p, Some(d)))?,
        ImageFormat::Gif => probe_gif(bytes, &src).map(|(p, d)| (p, Some(d)))?,
        ImageFormat::Jpeg => {
            check_jpeg_complete(bytes, &src)?;
            (Probe::Other, None)
        }
        _ => (Probe::Other, None),
    };

    // Pillow accepts a PNG cut anywhere after its last image-data byte (it never reads the
    // IDAT CRC or IEND strictly); the decoder wants both, so hand it a completed tail.
    let repaired = if format == ImageFormat::Png { png_complete_tail(bytes) } else { None };
    let bytes = repaired.as_deref().unwrap_or(bytes);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| classify(e, file, src.format))?;
    let (w, h) = decoder.dimensions();
    src.check(w, h)?;
    if let Some(dims) = header_dims {
        if dims != (w, h) {
            return Err(src.malformed(format!("header says {}x{}, decoder says {w}x{h}", dims.0, dims.1)));
        }
    }
    // The decoder allocates the whole image at once and a failed allocation aborts the
    // process; so the peak this image needs (decoded samples, plus the RGB copy the mode
    // conversion may make) is reserved first, fallibly, and released just before decoding.
    let peak = decoder.total_bytes().checked_add(u64::from(w) * u64::from(h) * 4);
    let mut reserve: Vec<u8> = Vec::new();
    if peak.and_then(|n| usize::try_from(n).ok()).is_none_or(|n| reserve.try_reserve_exact(n).is_err()) {
        return Err(PreprocessError::ResourceLimit {
            file: file.into(),
            detail: format!("{w}x{h} needs {} bytes of memory to decode, more than can be reserved", peak.unwrap_or(u64::MAX)),
        });
    }
    drop(reserve);
    let dynimg = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, file, src.format))?;
    if (dynimg.width(), dynimg.height()) != (w, h) {
        return Err(src.truncated("decoder returned fewer pixels than the header announced"));
    }
    let (mode, pixels) = to_pil_mode(format, &probe, dynimg);
    Ok(DecodedImage { width: w, height: h, mode, pixels, format: Some(format), source: file.into() })
}

/// PNG: the IHDR, read by the `png` crate (which also checks its CRC and field values).
fn probe_png(b: &[u8], src: &Source) -> Result<(Probe, (u32, u32)), PreprocessError> {
    let mut decoder = png::Decoder::new(Cursor::new(b));
    match decoder.read_header_info() {
        Ok(info) => {
            let probe = Probe::Png { bit_depth: info.bit_depth, color_type: info.color_type };
            Ok((probe, src.check(info.width, info.height)?))
        }
        Err(png::DecodingError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
            Err(src.truncated("file ends inside the IHDR header"))
        }
        Err(e) => match png_ihdr_dims(b) {
            // The crate says only "invalid dimensions"; name them.
            Some((width, height)) if width == 0 || height == 0 => Err(PreprocessError::ZeroSized { file: src.file.into(), width, height }),
            _ => Err(src.malformed(e.to_string())),
        },
    }
}

/// Width and height from an IHDR that is the first chunk (signature, length, "IHDR", w, h).
fn png_ihdr_dims(b: &[u8]) -> Option<(u32, u32)> {
    let be32 = |at: usize| b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    (b.get(12..16) == Some(b"IHDR")).then_some(())?;
    Some((be32(16)?, be32(20)?))
}

/// If a PNG ends after the data of an IDAT chunk (CRC, IEND or a trailing ancillary chunk cut
/// off), returns the file with that tail rebuilt: IDAT CRC recomputed and an IEND appended.
/// `None` when the file ends properly or is cut inside image data (a real truncation).
fn png_complete_tail(b: &[u8]) -> Option<Vec<u8>> {
    const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
    let mut pos = 8usize;
    let mut seen_idat = false;
    loop {
        if pos == b.len() {
            // Clean end without IEND.
            return seen_idat.then(|| [b, &IEND[..]].concat());
        }
        if pos + 8 > b.len() {
            return seen_idat.then(|| [&b[..pos], &IEND[..]].concat());
        }
        let len = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
        let kind = &b[pos + 4..pos + 8];
        let data_end = pos.checked_add(8)?.checked_add(len)?;
        if kind == b"IEND" {
            return None;
        }
        if data_end > b.len() {
            // Cut inside chunk data: fatal inside IDAT, a harmless tail elsewhere after IDAT.
            return (seen_idat && kind != b"IDAT").then(|| [&b[..pos], &IEND[..]].concat());
        }
        if data_end + 4 > b.len() {
            if kind != b"IDAT" {
                return seen_idat.then(|| [&b[..pos], &IEND[..]].concat());
            }
            let crc = crc32fast::hash(&b[pos + 4..data_end]).to_be_bytes();
            return Some([&b[..data_end], &crc[..], &IEND[..]].concat());
        }
        seen_idat |= kind == b"IDAT";
        pos = data_end + 4;
    }
}

/// BMP: dimensions and palette from `image`'s `BmpDecoder`; for palette images, whether Pillow
/// calls them `P`, `L` or `1`.
fn probe_bmp(b: &[u8], src: &Source) -> Result<(Probe, (u32, u32)), PreprocessError> {
    let decoder = BmpDecoder::new(Cursor::new(b)).map_err(|e| classify(e, src.file, src.format))?;
    let (w, h) = decoder.dimensions();
    let dims = src.check(w, h)?;
    // Only palette types (<= 8 bpp, RLE included) carry a palette.
    let Some(palette) = decoder.get_palette() else {
        return Ok((Probe::Bmp { mode: None }, dims));
    };
    let colors = bmp_palette_len(b).ok_or_else(|| src.truncated("file ends inside the DIB header"))?;
    // Pillow: "1" for the palette [0, 255], "L" for the identity grey ramp, else "P".
    let grey = (0..colors).all(|i| {
        let want = if colors == 2 { [0u8, 255][i] } else { i as u8 };
        palette.get(i) == Some(&[want; 3])
    });
    let mode = match (grey, colors) {
        (false, _) => PilMode::P,
        (true, 0..=2) => PilMode::Bilevel,
        (true, _) => PilMode::L,
    };
    Ok((Probe::Bmp { mode: Some(mode) }, dims))
}

/// Palette entries a palette BMP declares (colours used, or `1 << bits` when that is 0), as
/// Pillow counts them; `BmpDecoder` keeps both fields private. Called only after `BmpDecoder`
/// accepted the header, so the fields are present and `colours <= 1 << bits <= 256`.
fn bmp_palette_len(b: &[u8]) -> Option<usize> {
    let le = |at: usize, n: usize| b.get(at..at + n).map(|s| s.iter().rev().fold(0u32, |v, &x| (v << 8) | u32::from(x)));
    let (bits, colors) = match le(14, 4)? {
        // BITMAPCOREHEADER: bit count at 24, no colours-used field.
        12 => (le(24, 2)?, 0),
        _ => (le(28, 2)?, le(46, 4)?),
    };
    Some(if colors == 0 { 1usize << bits.min(8) } else { colors.min(256) as usize })
}

/// GIF: logical screen, the first frame's rectangle, palette and transparency index, read by the
/// `gif` crate without decoding pixels; Pillow calls an identity grey palette mode `L`.
fn probe_gif(b: &[u8], src: &Source) -> Result<(Probe, (u32, u32)), PreprocessError> {
    let err = |e: gif::DecodingError| match e {
        gif::DecodingError::UnexpectedEof => src.truncated("file ends before the first image's pixel data"),
        gif::DecodingError::Io(io) if io.kind() == ErrorKind::UnexpectedEof => {
            src.truncated("file ends before the first image's pixel data")
        }
        other => src.malformed(other.to_string()),
    };
    let mut decoder = gif::DecodeOptions::new().read_info(b).map_err(err)?;
    let dims = src.check(u32::from(decoder.width()), u32::from(decoder.height()))?;
    let global = decoder.global_palette().map(<[u8]>::to_vec);
    let frame = decoder.next_frame_info().map_err(err)?.ok_or_else(|| src.malformed("no image before the trailer"))?;
    let palette_needed = |p: &Vec<u8>| p.chunks_exact(3).enumerate().any(|(i, c)| !(i < 256 && c == [i as u8; 3]));
    // A local table replaces the global one, grey ramp or not.
    let palette = frame.palette.clone().or(global).filter(palette_needed);
    let rect = (u32::from(frame.left), u32::from(frame.top), u32::from(frame.width), u32::from(frame.height));
    let fill_index = frame.transparent.unwrap_or(0);
    Ok((Probe::Gif(GifProbe { palette, frame: rect, fill_index }), dims))
}

/// Maps a decoded image to the mode and samples Pillow would hold.
fn to_pil_mode(format: ImageFormat, probe: &Probe, img: DynamicImage) -> (PilMode, Pixels) {
    use DynamicImage as D;
    match (format, probe) {
        (_, Probe::Png { bit_depth, color_type }) => {
            use png::{BitDepth as B, ColorType as C};
            match (*color_type, *bit_depth) {
                (C::Grayscale, B::One) => {
                    (PilMode::Bilevel, Pixels::U8(channel0_u8(img).into_iter().map(|v| if v != 0 { 255 } else { 0 }).collect()))
                }
                (C::Grayscale, B::Sixteen) => (PilMode::I16, Pixels::U16(channel0_u16(img))),
                (C::Grayscale, _) => (PilMode::L, Pixels::U8(channel0_u8(img))),
                (C::Rgb, _) => (PilMode::Rgb, Pixels::U8(rgb_u8(img))),
                (C::Indexed, _) => (PilMode::P, Pixels::U8(rgb_u8(img))),
                (C::GrayscaleAlpha, B::Eight) => (PilMode::La, Pixels::U8(la_u8(img))),
                (C::GrayscaleAlpha | C::Rgba, _) => (PilMode::Rgba, Pixels::U8(rgba_u8(img))),
            }
        }
        (_, Probe::Bmp { mode: Some(mode) }) => match mode {
            PilMode::L => (PilMode::L, Pixels::U8(channel0_u8(img))),
            PilMode::Bilevel => (PilMode::Bilevel, Pixels::U8(channel0_u8(img))),
            _ => (PilMode::P, Pixels::U8(rgb_u8(img))),
        },
        (_, Probe::Gif(g)) => {
            let (width, height) = (img.width(), img.height());
            let mut rgb = rgb_u8(img);
            fill_outside_gif_frame(&mut rgb, width, height, g);
            match &g.palette {
                Some(_) => (PilMode::P, Pixels::U8(rgb)),
                None => (PilMode::L, Pixels::U8(rgb.chunks_exact(3).map(|p| p[0]).collect())),
            }
        }
        _ => match img {
            D::ImageLuma8(b) => (PilMode::L, Pixels::U8(b.into_raw())),
            D::ImageRgb8(b) => (PilMode::Rgb, Pixels::U8(b.into_raw())),
            D::ImageRgba8(b) => (PilMode::Rgba, Pixels::U8(b.into_raw())),
            other => generic_mode(other),
        },
    }
}

fn generic_mode(img: DynamicImage) -> (PilMode, Pixels) {
    if img.color().has_alpha() {
        (PilMode::Rgba, Pixels::U8(rgba_u8(img)))
    } else {
        (PilMode::Rgb, Pixels::U8(rgb_u8(img)))
    }
}

/// First channel as 8 bits (grey images; 16-bit samples keep the high byte).
fn channel0_u8(img: DynamicImage) -> Vec<u8> {
    use DynamicImage as D;
    match img {
        D::ImageLuma8(b) => b.into_raw(),
        D::ImageLumaA8(b) => b.into_raw().chunks_exact(2).map(|p| p[0]).collect(),
        D::ImageRgb8(b) => b.into_raw().chunks_exact(3).map(|p| p[0]).collect(),
        D::ImageRgba8(b) => b.into_raw().chunks_exact(4).map(|p| p[0]).collect(),
        D::ImageLuma16(b) => b.into_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        D::ImageLumaA16(b) => b.into_raw().chunks_exact(2).map(|p| (p[0] >> 8) as u8).collect(),
        other => other.to_luma8().into_raw(),
    }
}

fn channel0_u16(img: DynamicImage) -> Vec<u16> {
    use DynamicImage as D;
    match img {
        D::ImageLuma16(b) => b.into_raw(),
        D::ImageLumaA16(b) => b.into_raw().chunks_exact(2).map(|p| p[0]).collect(),
        other => other.to_luma16().into_raw(),
    }
}

/// RGB bytes, alpha dropped, 16-bit samples truncated to their high byte (Pillow's unpackers).
fn rgb_u8(img: DynamicImage) -> Vec<u8> {
    use DynamicImage as D;
    match img {
        D::ImageRgb8(b) => b.into_raw(),
        D::ImageRgba8(b) => b.into_raw().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        D::ImageRgb16(b) => b.into_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        D::ImageRgba16(b) => b.into_raw().chunks_exact(4).flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8]).collect(),
        D::ImageLuma8(b) => b.into_raw().iter().flat_map(|&v| [v; 3]).collect(),
        D::ImageLumaA8(b) => b.into_raw().chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(),
        other => other.to_rgb8().into_raw(),
    }
}

fn rgba_u8(img: DynamicImage) -> Vec<u8> {
    use DynamicImage as D;
    match img {
        D::ImageRgba8(b) => b.into_raw(),
        D::ImageRgba16(b) => b.into_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        D::ImageLumaA16(b) => b
            .into_raw()
            .chunks_exact(2)
            .flat_map(|p| {
                let (l, a) = ((p[0] >> 8) as u8, (p[1] >> 8) as u8);
                [l, l, l, a]
            })
            .collect(),
        D::ImageLumaA8(b) => b.into_raw().chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
        other => other.to_rgba8().into_raw(),
    }
}

fn la_u8(img: DynamicImage) -> Vec<u8> {
    match img {
        DynamicImage::ImageLumaA8(b) => b.into_raw(),
        other => other.to_luma_alpha8().into_raw(),
    }
}

/// Pillow starts a GIF's first frame on a canvas filled with the transparency index (or 0) and
/// converts through the palette; the decoder leaves transparent black there instead.
fn fill_outside_gif_frame(rgb: &mut [u8], width: u32, height: u32, g: &GifProbe) {
    let (left, top, fw, fh) = g.frame;
    if left == 0 && top == 0 && fw >= width && fh >= height {
        return;
    }
    let idx = g.fill_index as usize;
    let colour = match &g.palette {
        Some(p) => p.get(idx * 3..idx * 3 + 3).map_or([0, 0, 0], |c| [c[0], c[1], c[2]]),
        None => [g.fill_index; 3],
    };
    let (x1, y1) = (left.saturating_add(fw), top.saturating_add(fh));
    for y in 0..height {
        for x in 0..width {
            if x < left || x >= x1 || y < top || y >= y1 {
                let i = (y as usize * width as usize + x as usize) * 3;
                rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
    }
}

/// Pillow refuses a JPEG whose entropy-coded data stops before the end-of-image marker
/// ("image file is truncated"); some decoders quietly return a grey-filled picture instead. This
/// walks the marker segments (so thumbnails inside APP segments are skipped) up to EOI.
fn check_jpeg_complete(b: &[u8], src: &Source) -> Result<(), PreprocessError> {
    let mut pos = 2usize; // after SOI
    loop {
        // Find the next marker, skipping fill bytes.
        // Like libjpeg, tolerate stray bytes between segments.
        while pos < b.len() && b[pos] != 0xFF {
            pos += 1;
        }
        if pos >= b.len() {
            return Err(src.truncated("no end-of-image marker"));
        }
        while pos < b.len() && b[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = b.get(pos) else {
            return Err(src.truncated("no end-of-image marker"));
        };
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            0xD0..=0xD7 | 0x01 | 0xD8 => continue,
            _ => {
                let len = match b.get(pos..pos + 2) {
                    Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
                    None => return Err(src.truncated("file ends inside a marker segment")),
                };
                if len < 2 {
                    return Err(src.malformed(format!("marker 0x{marker:02x} has length {len}")));
                }
                pos += len;
                if pos > b.len() {
                    return Err(src.truncated("file ends inside a marker segment"));
                }
                if marker == 0xDA {
                    // Entropy-coded data: 0xFF is followed by 0x00 (stuffing) or a restart
                    // marker, or else it starts the next marker.
                    loop {
                        match b.get(pos..pos + 2) {
                            None => return Err(src.truncated("file ends inside the scan data")),
                            Some([0xFF, m]) if *m == 0x00 || (0xD0..=0xD7).contains(m) => pos += 2,
                            Some([0xFF, _]) => break,
                            Some(_) => pos += 1,
                        }
                    }
                }
            }
        }
    }
}

fn classify(e: image::ImageError, file: &str, format: &'static str) -> PreprocessError {
    use image::ImageError as E;
    let detail = e.to_string();
    let is_eof = {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut found = false;
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                found |= io.kind() == std::io::ErrorKind::UnexpectedEof;
            }
            let m = s.to_string().to_ascii_lowercase();
            found |= ["eof", "end of file", "truncat", "unexpected end", "not enough data", "no more data", "ended early"]
                .iter()
                .any(|k| m.contains(k));
            src = s.source();
        }
        found
    };
    match e {
        E::Unsupported(_) => PreprocessError::UnsupportedFormat { file: file.into(), detail },
        E::Limits(_) => PreprocessError::ResourceLimit { file: file.into(), detail },
        _ if is_eof => PreprocessError::Truncated { file: file.into(), format, detail },
        _ => PreprocessError::Malformed { file: file.into(), format, detail },
    }
}
