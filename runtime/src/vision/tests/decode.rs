//! Decoding: hostile inputs (one test each) and the Pillow mode of each format.

use super::{cfg, encode_jpeg, encode_png, noise, png_header_only};
use crate::vision::decode::*;
use crate::vision::preprocess;
use image::{ExtendedColorType, ImageEncoder};

#[test]
fn hostile_empty_file() {
    let e = load_image_from_memory(&[], ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::Empty { .. }), "{e}");
    let dir = std::env::temp_dir().join(format!("sail-prep-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("empty.png");
    std::fs::write(&p, b"").unwrap();
    let e = load_image(&p, ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::Empty { .. }) && e.to_string().contains("empty.png"), "{e}");
    let missing = load_image(&dir.join("missing.png"), ImageLimits::default()).unwrap_err();
    assert!(matches!(missing, PreprocessError::Io { .. }) && missing.to_string().contains("missing.png"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hostile_zero_sized() {
    let e = load_image_from_memory(&png_header_only(0, 5), ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::ZeroSized { width: 0, height: 5, .. }), "{e}");
    // GIF with a 0x0 logical screen.
    let gif = b"GIF89a\x00\x00\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let e = load_image_from_memory(gif, ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::ZeroSized { .. }), "{e}");
    assert!(matches!(from_rgb8(0, 10, &[]), Err(PreprocessError::ZeroSized { .. })));
}

#[test]
fn hostile_truncated() {
    let (w, h) = (64, 48);
    let png = encode_png(w, h, ExtendedColorType::Rgb8, &noise((w * h * 3) as usize, 1));
    assert!(load_image_from_memory(&png, ImageLimits::default()).is_ok());
    let e = load_image_from_memory(&png[..png.len() / 2], ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::Truncated { format: "PNG", .. }), "{e}");
    let e = load_image_from_memory(&png[..20], ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::Truncated { .. }), "{e}");
    let jpg = encode_jpeg(w, h, &noise((w * h * 3) as usize, 2));
    assert!(load_image_from_memory(&jpg, ImageLimits::default()).is_ok());
    let e = load_image_from_memory(&jpg[..jpg.len() * 2 / 3], ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::Truncated { format: "JPEG", .. }), "{e}");
}

#[test]
fn hostile_unsupported_format() {
    for bytes in [&b"II*\x00\x08\x00\x00\x00rest-of-a-tiff"[..], b"just some text, not an image", b"\x00\x01"] {
        let e = load_image_from_memory(bytes, ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::UnsupportedFormat { .. }), "{e}");
    }
}

#[test]
fn hostile_over_pixel_budget() {
    // The header alone claims 10^10 pixels; there is no pixel data to decode.
    let e = load_image_from_memory(&png_header_only(100_000, 100_000), ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::TooManyPixels { pixels: 10_000_000_000, .. }), "{e}");
    // The budget is configurable.
    let png = encode_png(40, 30, ExtendedColorType::L8, &noise(1200, 3));
    assert!(load_image_from_memory(&png, ImageLimits { max_pixels: 1200 }).is_ok());
    let e = load_image_from_memory(&png, ImageLimits { max_pixels: 1199 }).unwrap_err();
    assert!(matches!(e, PreprocessError::TooManyPixels { max_pixels: 1199, .. }), "{e}");
    let img = from_rgb8(40, 30, &noise(3600, 4)).unwrap();
    let mut c = cfg(448, 10);
    c.limits.max_pixels = 1000;
    assert!(matches!(preprocess(&img, &c), Err(PreprocessError::TooManyPixels { .. })));
}

/// The BMP and GIF probes (`image`'s `BmpDecoder`, the `gif` crate) check the budget from the
/// header alone, as the PNG one does: these files have no pixel data at all.
#[test]
fn hostile_over_pixel_budget_in_bmp_and_gif_headers() {
    let bmp = |w: i32, h: i32| {
        let mut b = b"BM".to_vec();
        for v in [54u32, 0, 54, 40] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&w.to_le_bytes());
        b.extend_from_slice(&h.to_le_bytes());
        b.extend_from_slice(&[1, 0, 24, 0]);
        b.extend_from_slice(&[0; 24]);
        b
    };
    let e = load_image_from_memory(&bmp(60_000, -60_000), ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::TooManyPixels { width: 60_000, height: 60_000, .. }), "{e}");
    // Past the decoder's own 65535 limit: still a typed error naming the source.
    let e = load_image_from_memory_named(&bmp(70_000, 10), "wide.bmp", ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::Malformed { format: "BMP", .. }) && e.to_string().starts_with("wide.bmp: "), "{e}");
    let gif = b"GIF89a\xff\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let e = load_image_from_memory(gif, ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::TooManyPixels { width: 65_535, height: 65_535, .. }), "{e}");
}

#[test]
fn hostile_absurd_aspect_ratio() {
    let e = load_image_from_memory(&png_header_only(100_000, 10), ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::AbsurdAspectRatio { width: 100_000, height: 10, .. }), "{e}");
    let e = load_image_from_memory(&png_header_only(3, 5000), ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::AbsurdAspectRatio { .. }), "{e}");
    // What the reference handles sensibly stays accepted.
    for (w, h) in [(1000, 10), (10, 1000), (1, 1000), (1000, 1), (1024, 1), (1, 4096), (4096, 4), (5000, 5), (200_000, 200)] {
        assert!(check_dimensions("x", w, h, DEFAULT_MAX_PIXELS).is_ok(), "{w}x{h}");
    }
    assert!(check_dimensions("x", 4097, 4, DEFAULT_MAX_PIXELS).is_err());
}

#[test]
fn hostile_corrupt_data_is_a_typed_error() {
    let (w, h) = (32, 32);
    let mut png = encode_png(w, h, ExtendedColorType::Rgb8, &noise((w * h * 3) as usize, 5));
    let n = png.len();
    for b in &mut png[60..n - 20] {
        *b ^= 0x5A;
    }
    let e = load_image_from_memory(&png, ImageLimits::default()).unwrap_err();
    assert!(matches!(e, PreprocessError::Malformed { .. } | PreprocessError::Truncated { .. }), "{e}");
}

#[test]
fn hostile_every_truncation_point_is_an_error_not_a_panic() {
    let (w, h) = (23, 17);
    let rgb = noise((w * h * 3) as usize, 6);
    let mut files = vec![encode_png(w, h, ExtendedColorType::Rgb8, &rgb), encode_jpeg(w, h, &rgb)];
    let mut bmp = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bmp).write_image(&rgb, w, h, ExtendedColorType::Rgb8).unwrap();
    files.push(bmp);
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        let rgba: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
        enc.encode(&rgba, w, h, ExtendedColorType::Rgba8).unwrap();
    }
    files.push(gif);
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp).write_image(&rgb, w, h, ExtendedColorType::Rgb8).unwrap();
    files.push(webp);
    for (name, f) in ["PNG", "JPEG", "BMP", "GIF", "WebP"].iter().zip(&files) {
        assert!(load_image_from_memory(f, ImageLimits::default()).is_ok());
        let ok: Vec<usize> = (0..f.len()).filter(|&cut| load_image_from_memory(&f[..cut], ImageLimits::default()).is_ok()).collect();
        // Only trailers may go missing: PNG's IDAT CRC + IEND (16 bytes; Pillow accepts those
        // cuts too), GIF's block terminator and trailer. Anything cut in pixel data fails.
        assert!(ok.iter().all(|&cut| cut + 16 >= f.len()), "{name}: prefixes {ok:?} of {} bytes decode", f.len());
        if *name == "PNG" {
            assert_eq!(ok, (f.len() - 16..f.len()).collect::<Vec<_>>(), "PNG tails Pillow accepts");
        }
    }
}

// -- decoding and modes ----------------------------------------------------------------------

#[test]
fn decodes_each_format_into_the_pillow_mode() {
    let (w, h) = (19, 11);
    let n = (w * h) as usize;
    let px = noise(n * 4, 7);
    let l16: Vec<u8> = px[..n * 2].to_vec();
    let cases: Vec<(Vec<u8>, PilMode)> = vec![
        (encode_png(w, h, ExtendedColorType::L8, &px[..n]), PilMode::L),
        (encode_png(w, h, ExtendedColorType::La8, &px[..n * 2]), PilMode::La),
        (encode_png(w, h, ExtendedColorType::Rgb8, &px[..n * 3]), PilMode::Rgb),
        (encode_png(w, h, ExtendedColorType::Rgba8, &px[..n * 4]), PilMode::Rgba),
        (encode_png(w, h, ExtendedColorType::L16, &l16), PilMode::I16),
        (encode_png(w, h, ExtendedColorType::La16, &px[..n * 4]), PilMode::Rgba),
        (encode_jpeg(w, h, &px[..n * 3]), PilMode::Rgb),
    ];
    for (bytes, mode) in cases {
        let img = load_image_from_memory(&bytes, ImageLimits::default()).unwrap();
        assert_eq!((img.width(), img.height(), img.mode()), (w, h, mode));
    }
    // 16-bit RGB keeps the high byte (Pillow's RGB;16B unpacker), it does not round.
    let rgb16: Vec<u8> = [0x12FFu16, 0x8080, 0xFE01].repeat(n).iter().flat_map(|v| v.to_ne_bytes()).collect();
    let img = load_image_from_memory(&encode_png(w, h, ExtendedColorType::Rgb16, &rgb16), ImageLimits::default()).unwrap();
    assert_eq!(img.mode(), PilMode::Rgb);
    assert_eq!(&img.samples_u8().unwrap()[..3], &[0x12, 0x80, 0xFE]);
    // I;16 -> RGB clips at 255 instead of scaling.
    let img = from_gray16(3, 1, vec![7, 255, 40_000]).unwrap();
    assert_eq!(img.to_rgb8(), vec![7, 7, 7, 255, 255, 255, 255, 255, 255]);
}
