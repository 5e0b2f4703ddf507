//! The image embedding cache through the library, on the small dense golden model (a 3×2 grid +
//! thumbnail = 7 tiles): rows served from memory or disk equal freshly encoded rows bit for bit,
//! a hit encodes nothing, and a truncated, corrupted, foreign or garbage disk entry is never used:
//! the image is recomputed and the entry replaced.

use sail::cache::{CacheParams, Hit};
use sail::session::{GenerateParams, Generation, Model, ModelParams, PreparedImage, Session, SessionParams};
use sail::vision::decode::{load_image, ImageLimits};
use sail_format::quant::{Preset, VisionType};
use sail_testkit::{checkpoint, converted, golden::Case};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

struct Fixture {
    gguf: PathBuf,
    image: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        sail::ggml::llama_init(false);
        let c = Case::load("small-dense").unwrap();
        let argv = c.generator_argv();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let gguf = converted(&checkpoint(&argv), "small-dense", Preset::F32, VisionType::F32);
        Fixture { gguf, image: c.image().unwrap() }
    })
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sail-image-cache-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn model(cache: CacheParams) -> Arc<Model> {
    let p = ModelParams { n_threads: 2, image_cache: cache, ..Default::default() };
    Arc::new(Model::load(&fixture().gguf, &p).unwrap())
}

fn no_cache() -> CacheParams {
    CacheParams { memory_bytes: 0, dir: None, disk_bytes: 0 }
}

fn with_dir(dir: &Path) -> CacheParams {
    CacheParams { dir: Some(dir.to_path_buf()), ..Default::default() }
}

fn prepare(m: &Model, max_tiles: Option<u32>) -> PreparedImage {
    m.prepare_image_file(&fixture().image, max_tiles, ImageLimits::default()).unwrap()
}

/// One greedy question about `img` in a new session.
fn ask(m: &Arc<Model>, img: PreparedImage) -> Generation {
    let sp = SessionParams { n_threads: 2, kv_f32: true, ..Default::default() };
    let mut s = Session::new(m.clone(), sp);
    s.add_image(img).unwrap();
    let gp = GenerateParams { n_predict: 4, ignore_eos: true, ..Default::default() };
    s.generate("What is in the image?", &gp, |_, _| true).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Rows and tokens of the image encoded with the cache off.
fn fresh() -> &'static Generation {
    static G: OnceLock<Generation> = OnceLock::new();
    G.get_or_init(|| {
        let m = model(no_cache());
        let img = prepare(&m, None);
        assert!(img.cache_hit().is_none());
        let g = ask(&m, img);
        assert_eq!((g.tiles, g.tiles_encoded), (7, 7));
        g
    })
}

fn assert_same_as_fresh(g: &Generation, what: &str) {
    let f = fresh();
    assert_eq!(g.embeddings.len(), f.embeddings.len(), "{what}: row count");
    assert!(bits(&g.embeddings) == bits(&f.embeddings), "{what}: rows differ from a fresh encode");
    assert_eq!(g.tokens, f.tokens, "{what}: tokens");
    assert!(bits(&g.prompt_logits) == bits(&f.prompt_logits), "{what}: logits");
}

#[test]
fn rows_from_memory_and_disk_are_bit_identical_and_cost_no_encoding() {
    let dir = tmp("hits");
    let m = model(with_dir(&dir));
    let first = prepare(&m, None);
    assert_eq!(first.cache_hit(), None);
    let g = ask(&m, first);
    assert_eq!(g.tiles_encoded, 7);
    assert_same_as_fresh(&g, "first question (miss)");
    assert_eq!(m.encoded_tiles(), 7);
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "one entry on disk");

    // a second question about the same photo, in a new session: from memory, no decoding
    let again = prepare(&m, None);
    assert_eq!(again.cache_hit(), Some(Hit::Memory));
    assert!(again.pixels().is_empty() && again.timings.decode_ms == 0.0 && again.timings.tile_ms == 0.0);
    assert_eq!((again.tiles, again.grid), (7, (3, 2)));
    let g = ask(&m, again);
    assert_eq!(g.tiles_encoded, 0);
    assert_eq!(m.encoded_tiles(), 7, "a memory hit encodes nothing");
    assert_same_as_fresh(&g, "memory hit");

    // another process (a new model) with the same folder: from disk
    let m2 = model(with_dir(&dir));
    let img = prepare(&m2, None);
    assert_eq!(img.cache_hit(), Some(Hit::Disk));
    let g = ask(&m2, img);
    assert_eq!((g.tiles_encoded, m2.encoded_tiles()), (0, 0));
    assert_same_as_fresh(&g, "disk hit");
    let s = m2.image_cache().stats();
    assert_eq!((s.disk_hits, s.misses, s.rejected), (1, 0, 0));

    // other tiling settings are another image
    let one = prepare(&m2, Some(1));
    assert_eq!((one.cache_hit(), one.tiles), (None, 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn raw_pixels_are_keyed_by_their_content() {
    let m = model(CacheParams::default());
    let fresh_m = model(no_cache());
    let img = load_image(&fixture().image, ImageLimits::default()).unwrap();
    let want = ask(&fresh_m, fresh_m.prepare_image(&img, None, ImageLimits::default()).unwrap());
    let first = m.prepare_image(&img, None, ImageLimits::default()).unwrap();
    assert_eq!(first.cache_hit(), None);
    assert_eq!(ask(&m, first).tiles_encoded, 7);
    let copy = sail::vision::decode::from_rgb8(img.width(), img.height(), &img.to_rgb8()).unwrap();
    let hit = m.prepare_image(&copy, None, ImageLimits::default()).unwrap();
    assert_eq!(hit.cache_hit(), Some(Hit::Memory));
    let g = ask(&m, hit);
    assert_eq!(g.tiles_encoded, 0);
    assert!(bits(&g.embeddings) == bits(&want.embeddings));
    // one pixel changed: a different image
    let mut rgb = img.to_rgb8();
    rgb[0] ^= 1;
    let changed = sail::vision::decode::from_rgb8(img.width(), img.height(), &rgb).unwrap();
    assert_eq!(m.prepare_image(&changed, None, ImageLimits::default()).unwrap().cache_hit(), None);
}

/// Stores the entry, damages it with `damage`, and checks that a new model refuses it,
/// recomputes the same rows and leaves a good entry behind.
fn damaged_entry_is_recomputed(name: &str, damage: impl Fn(&Path, &Path)) {
    let dir = tmp(name);
    let m = model(with_dir(&dir));
    ask(&m, prepare(&m, None));
    // a second, different entry (one tile) to play the foreign file
    ask(&m, prepare(&m, Some(1)));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let [small, entry] = &files[..] else { panic!("{name}: expected two entries, found {files:?}") };
    let good = std::fs::read(entry).unwrap();
    damage(entry, small);
    assert_ne!(std::fs::read(entry).unwrap(), good, "{name}: the damage changed nothing");

    let m2 = model(with_dir(&dir));
    let img = prepare(&m2, None);
    assert_eq!(img.cache_hit(), None, "{name}: a damaged entry was used");
    assert!(!entry.exists(), "{name}: the refused entry is removed at once");
    let s = m2.image_cache().stats();
    assert_eq!((s.rejected, s.misses, s.disk_hits), (1, 1, 0), "{name}: {s:?}");
    let g = ask(&m2, img);
    assert_eq!(g.tiles_encoded, 7, "{name}: recomputed");
    assert_same_as_fresh(&g, name);
    assert_eq!(std::fs::read(entry).unwrap(), good, "{name}: the entry is replaced by a good one");
    let m3 = model(with_dir(&dir));
    assert_eq!(prepare(&m3, None).cache_hit(), Some(Hit::Disk), "{name}: the replaced entry is used");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_entry_is_recomputed() {
    damaged_entry_is_recomputed("truncated", |p, _| {
        let len = std::fs::metadata(p).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len / 2).unwrap();
    });
}

#[test]
fn corrupted_entry_is_recomputed() {
    damaged_entry_is_recomputed("corrupted", |p, _| {
        let mut b = std::fs::read(p).unwrap();
        let at = b.len() - 1000;
        b[at] ^= 0x01; // one bit of one row value
        std::fs::write(p, b).unwrap();
    });
}

#[test]
fn foreign_entry_is_recomputed() {
    // intact, valid checksum, but another image's key (and shape) under this image's name
    damaged_entry_is_recomputed("foreign", |p, other| {
        std::fs::copy(other, p).unwrap();
    });
}

#[test]
fn garbage_entry_is_recomputed() {
    damaged_entry_is_recomputed("garbage", |p, _| {
        std::fs::write(p, b"this is not a sail cache entry").unwrap();
    });
}
