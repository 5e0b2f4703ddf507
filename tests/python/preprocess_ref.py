#!/usr/bin/env python3
"""Reference uint8 tiles for sail's image preprocessing parity test (numpy + Pillow only).

    python3 preprocess_ref.py --out DIR

Writes into DIR:
  images/<case>.<ext>    deterministic test images (numpy patterns + seeded noise): odd sizes,
                         1xN / Nx1 strips, large and tiny, L, LA, RGBA, P (+tRNS), 1-bit,
                         2/4-bit grey, 16-bit grey/RGB/RGBA/LA PNG, BMP, GIF, WebP, JPEG
  ref/<case>.npy         uint8 [tiles, S, S, 3]: the reference's tiles after resize / crop /
                         convert("RGB"), before ToTensor+Normalize
  ref/<case>.decoded.npy for lossy files only: Pillow's decoded pixels [H, W, C] in the file's mode,
                         so the Rust side can check its pipeline where the decoders disagree
  ref/<case>.norm.npy    float32 [tiles, 3, S, S] for a few cases: to_pixel_values() output
  manifest.tsv           one line per case (see HEADER) plus `cand` lines with the candidate grid
                         order (real CPython sets) for every max_num in 1..=64

The tiling is SAIL's (InternVL's dynamic_preprocess), as in the team's reference harness
(sail_common.py, not part of this repository). A maintainer who has it can set SAIL_REFERENCE_DIR
to its folder: every case is then also run through sail_common.dynamic_tiles / to_pixel_values
and must agree bit for bit. The tests never need it.
"""
from __future__ import annotations

import argparse
import os
import warnings
import struct
import sys
import zlib

import numpy as np
from PIL import Image

BICUBIC = Image.Resampling.BICUBIC
HEADER = ["case", "file", "class", "path", "tile_size", "max_tiles", "gx", "gy", "tiles", "mode",
          "width", "height", "compare", "norm"]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------
# SAIL tiling (same code path as sail_common.dynamic_tiles / to_pixel_values)

def candidate_ratios(min_num, max_num):
    return sorted({(i, j) for n in range(min_num, max_num + 1)
                   for i in range(1, n + 1) for j in range(1, n + 1)
                   if min_num <= i * j <= max_num}, key=lambda r: r[0] * r[1])


def closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_diff = float("inf")
    best = (1, 1)
    area = width * height
    for r in target_ratios:
        diff = abs(aspect_ratio - r[0] / r[1])
        if diff < best_diff:
            best_diff, best = diff, r
        elif diff == best_diff and area > 0.5 * image_size * image_size * r[0] * r[1]:
            best = r
    return best


def dynamic_tiles(image, image_size, min_num, max_num, use_thumbnail):
    w, h = image.size
    gx, gy = closest_aspect_ratio(w / h, candidate_ratios(min_num, max_num), w, h, image_size)
    resized = image.resize((image_size * gx, image_size * gy), BICUBIC)
    tiles = []
    for i in range(gx * gy):
        x0 = (i % gx) * image_size
        y0 = (i // gx) * image_size
        tiles.append(resized.crop((x0, y0, x0 + image_size, y0 + image_size)))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size), BICUBIC))
    return tiles, (gx, gy)


def to_uint8(tile, image_size):
    """to_pixel_values() up to (not including) ToTensor: convert('RGB') + identity-size resize."""
    if tile.mode != "RGB":
        tile = tile.convert("RGB")
    if tile.size != (image_size, image_size):
        tile = tile.resize((image_size, image_size), BICUBIC)
    return np.asarray(tile, dtype=np.uint8)


def reference_tiles(img, image_size, max_num, path):
    if path == "dynamic":
        tiles, grid = dynamic_tiles(img, image_size, 1, max_num, True)
    else:
        tiles, grid = [img.convert("RGB")], (1, 1)
    return np.stack([to_uint8(t, image_size) for t in tiles]), grid


def load_sail_common():
    for d in [os.environ.get("SAIL_REFERENCE_DIR")]:
        if d and os.path.exists(os.path.join(d, "sail_common.py")):
            sys.path.insert(0, d)
            try:
                import sail_common  # noqa: PLC0415
                return sail_common
            except Exception as e:  # pragma: no cover - optional cross-check only
                print(f"note: cannot import sail_common from {d}: {e}", file=sys.stderr)
            finally:
                sys.path.pop(0)
    return None


# --------------------------------------------------------------------------------------------
# Deterministic pixels

def pattern(h, w, seed, channels=3):
    """Gradients, a diagonal texture, blocks, a grid and noise (uint8 [h, w, channels])."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    planes = [
        (255 * x) // max(w - 1, 1),
        (255 * y) // max(h - 1, 1),
        64 + 4 * np.minimum((x * 7 + y * 5) % 64, 63 - (x * 7 + y * 5) % 64),
        (x * 3 + y * 11 + seed * 17) % 256,
    ]
    img = np.stack([planes[c % 4] for c in range(channels)], -1)
    img[h // 4: h // 2, w // 5: w // 2] = 250 - 40 * np.arange(channels)
    img[h // 2: 3 * h // 4, w // 2: 4 * w // 5] = 10 + 60 * np.arange(channels)
    img[::max(h // 6, 2)] //= 2
    img[:, ::max(w // 7, 2)] //= 2
    img = img + rng.integers(-16, 17, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def alpha_plane(h, w, seed):
    """Alpha with fully transparent, fully opaque and graded regions."""
    rng = np.random.default_rng(seed + 1000)
    y, x = np.mgrid[0:h, 0:w]
    a = ((x + 2 * y) * 255 // max(w + 2 * h - 3, 1)).astype(np.int64)
    a[: h // 3, : w // 3] = 0
    a[2 * h // 3:, 2 * w // 3:] = 255
    a = np.where(rng.random((h, w)) < 0.05, rng.integers(0, 256, (h, w)), a)
    return np.clip(a, 0, 255).astype(np.uint8)


def gray16(h, w, seed, top):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    v = (top * (x + y)) // max(w + h - 2, 1)
    v[h // 3: h // 2, w // 4: w // 2] = top
    v = v + rng.integers(-top // 40 - 1, top // 40 + 2, v.shape)
    return np.clip(v, 0, 65535).astype(np.uint16)


# --------------------------------------------------------------------------------------------
# Minimal PNG writer for variants Pillow cannot save (16-bit colour, 2/4-bit, custom tRNS)

def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png(path, rows, width, height, bit_depth, color_type, plte=None, trns=None):
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    if plte is not None:
        out += _chunk(b"PLTE", bytes(plte))
    if trns is not None:
        out += _chunk(b"tRNS", bytes(trns))
    out += _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


def pack_bits(idx, bits):
    """Packs a [h, w] array of small ints into PNG rows of `bits` per sample, MSB first."""
    per = 8 // bits
    h, w = idx.shape
    pad = (-w) % per
    a = np.pad(idx.astype(np.uint8), ((0, 0), (0, pad)))
    a = a.reshape(h, -1, per)
    shifts = np.array([8 - bits * (k + 1) for k in range(per)], dtype=np.uint8)
    return [bytes((a[r] << shifts).sum(-1).astype(np.uint8)) for r in range(h)]


def rows16(arr):
    return [arr[r].astype(">u2").tobytes() for r in range(arr.shape[0])]


# --------------------------------------------------------------------------------------------
# Corpus

def build_corpus(imgdir):
    """Returns [(case, file, class, path, tile_size, max_tiles, compare, norm)] after writing files."""
    cases = []

    def add(case, fname, cls, s=448, mx=10, path="dynamic", compare="exact", norm=False):
        cases.append((case, fname, cls, path, s, mx, compare, norm))

    def save(case, im, ext="png", **kw):
        fname = f"{case}.{ext}"
        im.save(os.path.join(imgdir, fname), **kw)
        return fname

    # RGB PNG: odd, large, small, exact-size copies, ties, tile-size / max_tiles variety.
    for case, (w, h), s, mx, norm in [
        ("rgb_200x150", (200, 150), 448, 10, False),
        ("rgb_449x301", (449, 301), 448, 10, False),
        ("rgb_1000x1000", (1000, 1000), 448, 10, False),
        ("rgb_3000x2000", (3000, 2000), 448, 10, False),
        ("rgb_5x7", (5, 7), 448, 10, False),
        ("rgb_2000x1000_tie", (2000, 1000), 448, 10, False),
        ("rgb_896x448_copy", (896, 448), 448, 10, False),
        ("rgb_448x448_copy", (448, 448), 448, 10, False),
        ("rgb_1000x1000_s224_m12", (1000, 1000), 224, 12, False),
        ("rgb_777x555_s112_m24", (777, 555), 112, 24, False),
        ("rgb_640x480_m1", (640, 480), 448, 1, False),
        ("rgb_300x2000_tall", (300, 2000), 448, 10, False),
        ("rgb_1203x97_s64_m64", (1203, 97), 64, 64, True),
    ]:
        add(case, save(case, Image.fromarray(pattern(h, w, len(cases)), "RGB")), "rgb", s, mx, norm=norm)

    # Strips: 1xN and Nx1 and near-strips.
    for case, (w, h) in [("strip_1x1000", (1, 1000)), ("strip_1000x1", (1000, 1)), ("strip_1x37", (1, 37)),
                         ("strip_4096x3", (4096, 3)), ("strip_10x1000", (10, 1000)), ("strip_1000x10", (1000, 10))]:
        add(case, save(case, Image.fromarray(pattern(h, w, len(cases)), "RGB")), "strip", 224, 10)

    # Grey.
    add("gray_640x480", save("gray_640x480", Image.fromarray(pattern(480, 640, 40, 1)[..., 0], "L")), "gray")
    add("gray_333x777", save("gray_333x777", Image.fromarray(pattern(777, 333, 41, 1)[..., 0], "L")), "gray", 224)
    g = pattern(67, 101, 42, 1)[..., 0] // 64
    write_png(os.path.join(imgdir, "gray2bit_101x67.png"), pack_bits(g, 2), 101, 67, 2, 0)
    add("gray2bit_101x67", "gray2bit_101x67.png", "gray", 224)
    g = pattern(130, 90, 43, 1)[..., 0] // 16
    write_png(os.path.join(imgdir, "gray4bit_90x130.png"), pack_bits(g, 4), 90, 130, 4, 0)
    add("gray4bit_90x130", "gray4bit_90x130.png", "gray", 224)
    add("gray_trns_200x100", save("gray_trns_200x100", Image.fromarray(pattern(100, 200, 44, 1)[..., 0], "L"),
                                  transparency=128), "gray", 224)
    bl = Image.fromarray(pattern(199, 301, 45, 1)[..., 0] > 127).convert("1")
    add("bilevel_301x199", save("bilevel_301x199", bl), "bilevel", 224)

    # Grey + alpha.
    for case, (w, h) in [("la_500x300", (500, 300)), ("la_17x1200", (17, 1200))]:
        la = np.stack([pattern(h, w, len(cases), 1)[..., 0], alpha_plane(h, w, len(cases))], -1)
        add(case, save(case, Image.fromarray(la, "LA")), "gray_alpha", 224 if h > 1000 else 448)

    # RGBA.
    for case, (w, h), s, norm in [("rgba_640x400", (640, 400), 448, False), ("rgba_1500x900", (1500, 900), 448, False),
                                  ("rgba_9x5_s112", (9, 5), 112, True), ("rgba_448x448_copy", (448, 448), 448, False)]:
        rgba = np.concatenate([pattern(h, w, len(cases)), alpha_plane(h, w, len(cases))[..., None]], -1)
        add(case, save(case, Image.fromarray(rgba, "RGBA")), "rgba", s, norm=norm)

    # Palette.
    p = Image.fromarray(pattern(300, 400, 60), "RGB").quantize(colors=200)
    add("p_400x300", save("p_400x300", p), "palette")
    p = Image.fromarray(pattern(180, 250, 61), "RGB").quantize(colors=64)
    add("p_trns_250x180", save("p_trns_250x180", p, transparency=bytes([0, 255, 128] + [255] * 61)), "palette", 224)
    idx = (pattern(77, 123, 62, 1)[..., 0] // 16).astype(np.uint8)
    plte = [v for i in range(16) for v in ((i * 53) % 256, (i * 97 + 30) % 256, (255 - i * 13) % 256)]
    write_png(os.path.join(imgdir, "p4bit_123x77.png"), pack_bits(idx, 4), 123, 77, 4, 3, plte=plte)
    add("p4bit_123x77", "p4bit_123x77.png", "palette", 224)
    add("rgb_trns_160x120", save("rgb_trns_160x120", Image.fromarray(pattern(120, 160, 63), "RGB"),
                                 transparency=(10, 20, 30)), "palette", 224)

    # 16-bit PNG (I;16 -> clipped to 255 by convert('RGB'); RGB/RGBA/LA 16 -> high byte).
    add("i16_320x240_full", save("i16_320x240_full", Image.fromarray(gray16(240, 320, 70, 65535))), "16bit")
    add("i16_257x199_low", save("i16_257x199_low", Image.fromarray(gray16(199, 257, 71, 600))), "16bit", 224)
    a = pattern(157, 211, 72).astype(np.uint16) * 257 + np.random.default_rng(72).integers(0, 257, (157, 211, 3)).astype(np.uint16)
    write_png(os.path.join(imgdir, "rgb16_211x157.png"), rows16(a.reshape(157, -1)), 211, 157, 16, 2)
    add("rgb16_211x157", "rgb16_211x157.png", "16bit", 224)
    a = np.concatenate([pattern(140, 180, 73), alpha_plane(140, 180, 73)[..., None]], -1).astype(np.uint16) * 257
    a = a + np.random.default_rng(73).integers(0, 257, a.shape).astype(np.uint16)
    write_png(os.path.join(imgdir, "rgba16_180x140.png"), rows16(a.reshape(140, -1)), 180, 140, 16, 6)
    add("rgba16_180x140", "rgba16_180x140.png", "16bit", 224)
    a = np.stack([pattern(90, 150, 74, 1)[..., 0], alpha_plane(90, 150, 74)], -1).astype(np.uint16) * 257
    write_png(os.path.join(imgdir, "la16_150x90.png"), rows16(a.reshape(90, -1)), 150, 90, 16, 4)
    add("la16_150x90", "la16_150x90.png", "16bit", 224)

    # BMP.
    add("bmp_rgb_333x222", save("bmp_rgb_333x222", Image.fromarray(pattern(222, 333, 80), "RGB"), "bmp"), "bmp", 224)
    add("bmp_p_200x160", save("bmp_p_200x160", Image.fromarray(pattern(160, 200, 81), "RGB").quantize(colors=100), "bmp"), "bmp", 224)
    add("bmp_l_180x120", save("bmp_l_180x120", Image.fromarray(pattern(120, 180, 82, 1)[..., 0], "L"), "bmp"), "bmp", 224)
    add("bmp_1bit_97x61", save("bmp_1bit_97x61", Image.fromarray(pattern(61, 97, 83, 1)[..., 0] > 100).convert("1"), "bmp"), "bmp", 224)
    rgba = np.concatenate([pattern(130, 150, 84), alpha_plane(130, 150, 84)[..., None]], -1)
    add("bmp_rgba32_150x130", save("bmp_rgba32_150x130", Image.fromarray(rgba, "RGBA"), "bmp"), "bmp", 224)

    # GIF (mode P; one with transparency).
    add("gif_p_300x200", save("gif_p_300x200", Image.fromarray(pattern(200, 300, 90), "RGB").quantize(colors=128), "gif"), "gif")
    g = Image.fromarray(pattern(90, 120, 91), "RGB").quantize(colors=32)
    add("gif_trns_120x90", save("gif_trns_120x90", g, "gif", transparency=3), "gif", 224)

    # First frame smaller than the logical screen: Pillow fills the rest with the palette colour
    # of the transparency index (or of index 0).
    for case, trns in [("gif_subframe_150x100", None), ("gif_subframe_trns_150x100", 5)]:
        g = Image.fromarray(pattern(80, 110, 92), "RGB").quantize(colors=16)
        fname = save(case, g, "gif", **({} if trns is None else {"transparency": trns}))
        path = os.path.join(imgdir, fname)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[6:10] = struct.pack("<HH", 150, 100)  # grow the logical screen only
        with open(path, "wb") as f:
            f.write(bytes(data))
        add(case, fname, "gif", 224)

    # WebP lossless.
    add("webp_ll_rgb_320x200", save("webp_ll_rgb_320x200", Image.fromarray(pattern(200, 320, 100), "RGB"), "webp", lossless=True), "webp_lossless", 224)
    rgba = np.concatenate([pattern(200, 200, 101), alpha_plane(200, 200, 101)[..., None]], -1)
    add("webp_ll_rgba_200x200", save("webp_ll_rgba_200x200", Image.fromarray(rgba, "RGBA"), "webp", lossless=True), "webp_lossless", 224)

    # Lossy: decoders differ; compared through Pillow's decoded pixels.
    add("jpeg_rgb_640x480", save("jpeg_rgb_640x480", Image.fromarray(pattern(480, 640, 110), "RGB"), "jpg", quality=90), "jpeg", compare="decoded")
    add("jpeg_rgb444_301x203", save("jpeg_rgb444_301x203", Image.fromarray(pattern(203, 301, 111), "RGB"), "jpg", quality=95, subsampling=0), "jpeg", 224, compare="decoded")
    add("jpeg_gray_300x200", save("jpeg_gray_300x200", Image.fromarray(pattern(200, 300, 112, 1)[..., 0], "L"), "jpg", quality=85), "jpeg", 224, compare="decoded")
    add("webp_lossy_320x240", save("webp_lossy_320x240", Image.fromarray(pattern(240, 320, 113), "RGB"), "webp", quality=80), "webp_lossy", 224, compare="decoded")

    # EXIF orientation 6 ("rotate 90"): the reference does not apply it, so neither may we.
    exif = Image.Exif()
    exif[0x0112] = 6
    add("exif_rot_png_320x200", save("exif_rot_png_320x200", Image.fromarray(pattern(200, 320, 114), "RGB"), exif=exif), "exif", 224)
    add("exif_rot_jpeg_320x200", save("exif_rot_jpeg_320x200", Image.fromarray(pattern(200, 320, 115), "RGB"), "jpg", quality=90, exif=exif), "jpeg", 224, compare="decoded")

    # The non-dynamic path (convert first, then resize) for modes where the order matters.
    for case, fname in [("single_rgba_640x400", "rgba_640x400.png"), ("single_p_400x300", "p_400x300.png"),
                        ("single_i16_320x240", "i16_320x240_full.png"), ("single_la_500x300", "la_500x300.png"),
                        ("single_rgb_3000x2000", "rgb_3000x2000.png")]:
        add(case, fname, "single", 224, path="single")
    return cases


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    imgdir, refdir = os.path.join(a.out, "images"), os.path.join(a.out, "ref")
    os.makedirs(imgdir, exist_ok=True)
    os.makedirs(refdir, exist_ok=True)
    # Palette + tRNS tiles warn on convert('RGB'); the conversion itself is what we want.
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    sail = load_sail_common()
    lines = ["# " + "\t".join(HEADER),
             f"# pillow {Image.__version__} numpy {np.__version__} python {sys.version.split()[0]} "
             f"sail_common {'cross-checked' if sail else 'not found'}"]
    for (case, fname, cls, path, s, mx, compare, norm) in build_corpus(imgdir):
        with Image.open(os.path.join(imgdir, fname)) as img:
            mode, (w, h) = img.mode, img.size
            tiles, grid = reference_tiles(img, s, mx, path)
            if sail is not None and path == "dynamic":
                st, sg = sail.dynamic_tiles(img, s, 1, mx, True)
                assert tuple(sg) == tuple(grid), (case, sg, grid)
                sarr = np.stack([to_uint8(t, s) for t in st])
                assert np.array_equal(sarr, tiles), case
            np.save(os.path.join(refdir, case + ".npy"), tiles)
            if compare == "decoded":
                np.save(os.path.join(refdir, case + ".decoded.npy"), np.asarray(img).reshape(h, w, -1))
            if norm:
                if sail is not None:
                    src = sail.dynamic_tiles(img, s, 1, mx, True)[0]
                    pv = np.stack([sail.to_pixel_values(t, s, MEAN, STD) for t in src])
                else:
                    x = tiles.astype(np.float32) / np.float32(255.0)
                    m = np.asarray(MEAN, np.float32)
                    sd = np.asarray(STD, np.float32)
                    pv = ((x - m) / sd).transpose(0, 3, 1, 2).astype(np.float32)
                np.save(os.path.join(refdir, case + ".norm.npy"), np.ascontiguousarray(pv, dtype=np.float32))
        row = [case, "images/" + fname, cls, path, s, mx, grid[0], grid[1], tiles.shape[0], mode, w, h, compare,
               int(norm)]
        lines.append("\t".join(str(v) for v in row))
    for mx in range(1, 65):
        lines.append("cand\t%d\t%s" % (mx, " ".join(f"{i},{j}" for i, j in candidate_ratios(1, mx))))
    with open(os.path.join(a.out, "manifest.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{sum(1 for l in lines if not l.startswith(('#', 'cand')))} cases written to {a.out}")


if __name__ == "__main__":
    main()
