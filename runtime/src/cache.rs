//! The image embedding cache: projector rows of images already encoded, in memory per model and
//! optionally on disk.
//!
//! Why: encoding is the slow half of a question about a photo (tens of seconds per tile on a
//! phone-class CPU, minutes for a 7-tile photo on a small board), and the rows are a pure function
//! of the image and the encoder. A second question about the same photo — a new session, a server
//! request that carries its history again, a new `sail run` with `--cache-dir` — should cost no
//! encoding, and no decoding or tiling either: an entry holds the tile count and grid with the rows.
//!
//! Exactness rests on the key, a SHA-256 over everything that can change a bit of the rows:
//! the image (its file bytes, or for raw pixels their mode, size and samples), every tiling
//! parameter (tile size, mean/std bits, tile limits, thumbnail, pixel budget), and the encoder
//! ([`EncoderId`]: vision file identity, weight type, device, threads, tiles per graph, this
//! crate's version and the entry format). Rows are stored as their exact f32 bits, so a hit is
//! bit-identical to a fresh encode by the same encoder.
//!
//! Trust: a disk entry is only data until checked. It carries its full key, its shape and a
//! SHA-256 of its payload; a file whose magic, version, key, shape, length or checksum does not
//! match is never used: it is removed and the image recomputed (and stored again). Entries are
//! written to a temporary file and renamed into place, so readers (other processes included)
//! never see half an entry; a crash leaves at most a temporary file, swept later. The folder is
//! kept under a byte cap by removing the least recently used entries (file mtime, refreshed on
//! every hit).
//!
//! What the vision-file identity does not detect: it hashes the file size, the whole GGUF header
//! (metadata and tensor table), the first 4 KiB of every tensor and 32 evenly spaced 4 KiB blocks
//! of the data, not all of a 1.4 GB file (that would cost seconds at every load). A file edited
//! in place outside those bytes, with its size and header unchanged, keeps its identity; a
//! different checkpoint, quantization or conversion does not.

use crate::vision::decode::DecodedImage;
use crate::vision::tiling::PreprocessConfig;
use sail_format::gguf::GgufFile;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Default byte cap of the in-memory cache of one model (about five 11-tile photos of the 2B
/// model, whose rows take 2 MiB per tile).
pub const DEFAULT_MEMORY_BYTES: usize = 128 << 20;
/// Default byte cap of the disk cache folder.
pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;

const MAGIC: &[u8; 8] = b"SAILROWS";
const VERSION: u32 = 1;
const HEADER: usize = 112;
const EXT: &str = "rows";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{dir}: cannot use this folder for the image cache: {source}")]
    Dir { dir: PathBuf, source: std::io::Error },
}

/// Where and how much to cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheParams {
    /// Byte cap of the in-memory cache; 0 turns it off.
    pub memory_bytes: usize,
    /// Folder for the disk cache; None: no disk cache.
    pub dir: Option<PathBuf>,
    /// Byte cap of the disk cache folder (entries only); 0 stores nothing.
    pub disk_bytes: u64,
}

impl Default for CacheParams {
    fn default() -> Self {
        CacheParams { memory_bytes: DEFAULT_MEMORY_BYTES, dir: None, disk_bytes: DEFAULT_DISK_BYTES }
    }
}

impl CacheParams {
    pub fn enabled(&self) -> bool {
        self.memory_bytes > 0 || (self.dir.is_some() && self.disk_bytes > 0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A length-prefixed field, so no two different field lists hash alike.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The encoder half of every key: which rows this encoder would compute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncoderId([u8; 32]);

impl std::fmt::Debug for EncoderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncoderId({})", hex(&self.0[..8]))
    }
}

impl EncoderId {
    /// `file` is the vision GGUF; `weight_type` the tower's matrix type; `device` the backend(s)
    /// the graph runs on; `threads` and `tiles_per_graph` how it is split (kept in the key so
    /// that no change of kernel path can make a hit differ from a fresh encode).
    pub fn new(file: &GgufFile, weight_type: &str, device: &str, threads: usize, tiles_per_graph: usize) -> EncoderId {
        let mut h = Sha256::new();
        field(&mut h, b"sail image rows encoder");
        field(&mut h, &VERSION.to_le_bytes());
        field(&mut h, env!("CARGO_PKG_VERSION").as_bytes());
        field(&mut h, &file_identity(file));
        field(&mut h, weight_type.as_bytes());
        field(&mut h, device.as_bytes());
        field(&mut h, &(threads as u64).to_le_bytes());
        field(&mut h, &(tiles_per_graph as u64).to_le_bytes());
        EncoderId(h.finalize().into())
    }
}

/// A cheap identity of a GGUF file (see the module notes for what it cannot see).
pub fn file_identity(f: &GgufFile) -> [u8; 32] {
    const BLOCK: usize = 4096;
    const SAMPLES: usize = 32;
    let b = f.bytes();
    let mut h = Sha256::new();
    field(&mut h, b"gguf identity");
    field(&mut h, &(b.len() as u64).to_le_bytes());
    field(&mut h, &b[..f.data_offset.min(b.len())]);
    for t in &f.tensors {
        let start = t.offset.min(b.len());
        let end = t.offset.saturating_add(t.n_bytes.min(BLOCK)).min(b.len());
        field(&mut h, &b[start..end]);
    }
    let data = b.len().saturating_sub(f.data_offset);
    for i in 0..SAMPLES {
        let start = f.data_offset + data / SAMPLES * i;
        field(&mut h, &b[start.min(b.len())..(start + BLOCK).min(b.len())]);
    }
    h.finalize().into()
}

/// What an image is, for its key.
#[derive(Debug, Clone, Copy)]
pub enum ImageSource<'a> {
    /// An encoded file (PNG, JPEG, …), as read.
    File(&'a [u8]),
    /// Pixels already decoded (camera frames, the C API's RGB buffers).
    Decoded(&'a DecodedImage),
}

/// The content address of one image's rows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageKey([u8; 32]);

impl std::fmt::Debug for ImageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImageKey({})", self.hex())
    }
}

impl ImageKey {
    pub fn new(encoder: &EncoderId, cfg: &PreprocessConfig, image: ImageSource<'_>) -> ImageKey {
        let mut h = Sha256::new();
        field(&mut h, b"sail image rows");
        field(&mut h, &encoder.0);
        let mut tiling = Vec::new();
        tiling.extend(cfg.tile_size.to_le_bytes());
        for v in cfg.mean.iter().chain(&cfg.std) {
            tiling.extend(v.to_bits().to_le_bytes());
        }
        tiling.extend(cfg.max_tiles.to_le_bytes());
        tiling.extend(cfg.min_tiles.to_le_bytes());
        tiling.push(cfg.use_thumbnail as u8);
        tiling.extend(cfg.limits.max_pixels.to_le_bytes());
        field(&mut h, &tiling);
        match image {
            ImageSource::File(bytes) => {
                field(&mut h, b"file");
                field(&mut h, bytes);
            }
            ImageSource::Decoded(img) => {
                field(&mut h, b"pixels");
                field(&mut h, img.mode().pil_name().as_bytes());
                field(&mut h, &img.width().to_le_bytes());
                field(&mut h, &img.height().to_le_bytes());
                match (img.samples_u8(), img.samples_u16()) {
                    (Some(s), _) => field(&mut h, s),
                    (None, Some(s)) => field(&mut h, &s.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
                    (None, None) => field(&mut h, b""),
                }
            }
        }
        ImageKey(h.finalize().into())
    }

    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// The shape every entry of one model must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowShape {
    pub tokens_per_tile: u32,
    pub n_embd: u32,
    /// Most tiles an image can have (grid tiles plus the thumbnail).
    pub max_tiles: u32,
}

/// An image's projector rows with the tiling they came from.
#[derive(Debug, Clone)]
pub struct CachedImage {
    pub tiles: usize,
    pub grid: (u32, u32),
    /// `[tiles · tokens_per_tile, n_embd]`, row-major.
    pub rows: Arc<[f32]>,
}

impl CachedImage {
    fn bytes(&self) -> usize {
        self.rows.len() * 4
    }
}

/// Where a hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    Memory,
    Disk,
}

/// Counters since the model was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub memory_hits: u64,
    pub disk_hits: u64,
    pub misses: u64,
    /// Disk entries refused by a check (and removed).
    pub rejected: u64,
    pub disk_writes: u64,
    pub disk_write_errors: u64,
    pub disk_evictions: u64,
    pub memory_evictions: u64,
    /// Rows held in memory now.
    pub memory_bytes: u64,
    pub memory_entries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    disk_writes: AtomicU64,
    disk_write_errors: AtomicU64,
    disk_evictions: AtomicU64,
    memory_evictions: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug, Default)]
struct Memory {
    entries: HashMap<ImageKey, (CachedImage, u64)>,
    tick: u64,
    bytes: usize,
}

/// One model's cache (memory, and the disk folder if any). Shared by its sessions.
#[derive(Debug)]
pub struct ImageCache {
    params: CacheParams,
    shape: RowShape,
    memory: Mutex<Memory>,
    counters: Counters,
}

impl ImageCache {
    /// Creates the disk folder if one is asked for.
    pub fn new(params: CacheParams, shape: RowShape) -> Result<ImageCache, CacheError> {
        if let Some(dir) = &params.dir {
            std::fs::create_dir_all(dir).map_err(|source| CacheError::Dir { dir: dir.clone(), source })?;
        }
        Ok(ImageCache { params, shape, memory: Mutex::default(), counters: Counters::default() })
    }

    pub fn params(&self) -> &CacheParams {
        &self.params
    }

    pub fn enabled(&self) -> bool {
        self.params.enabled()
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rows for `key`, from memory or (checked) from disk; a disk hit is kept in memory too.
    pub fn get(&self, key: &ImageKey) -> Option<(CachedImage, Hit)> {
        {
            let mut m = self.memory();
            m.tick += 1;
            let tick = m.tick;
            if let Some((img, used)) = m.entries.get_mut(key) {
                *used = tick;
                bump(&self.counters.memory_hits);
                return Some((img.clone(), Hit::Memory));
            }
        }
        if let Some(img) = self.read_disk(key) {
            bump(&self.counters.disk_hits);
            self.put_memory(key, &img);
            return Some((img, Hit::Disk));
        }
        bump(&self.counters.misses);
        None
    }

    /// Keeps `img` in memory (evicting the least recently used beyond the cap).
    pub fn put_memory(&self, key: &ImageKey, img: &CachedImage) {
        let cap = self.params.memory_bytes;
        if img.bytes() > cap {
            return;
        }
        let mut m = self.memory();
        m.tick += 1;
        let tick = m.tick;
        if let Some((old, _)) = m.entries.insert(*key, (img.clone(), tick)) {
            m.bytes -= old.bytes();
        }
        m.bytes += img.bytes();
        while m.bytes > cap {
            let Some(oldest) = m.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k) else { break };
            if let Some((gone, _)) = m.entries.remove(&oldest) {
                m.bytes -= gone.bytes();
                bump(&self.counters.memory_evictions);
            }
        }
    }

    /// Drops every entry held in memory (the disk folder stays).
    pub fn clear_memory(&self) {
        let mut m = self.memory();
        m.entries.clear();
        m.bytes = 0;
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let m = self.memory();
        CacheStats {
            memory_hits: get(&c.memory_hits),
            disk_hits: get(&c.disk_hits),
            misses: get(&c.misses),
            rejected: get(&c.rejected),
            disk_writes: get(&c.disk_writes),
            disk_write_errors: get(&c.disk_write_errors),
            disk_evictions: get(&c.disk_evictions),
            memory_evictions: get(&c.memory_evictions),
            memory_bytes: m.bytes as u64,
            memory_entries: m.entries.len() as u64,
        }
    }

    /// The disk entry's path for `key` (whether or not it exists).
    pub fn entry_path(&self, key: &ImageKey) -> Option<PathBuf> {
        self.params.dir.as_ref().map(|d| d.join(format!("{}.{EXT}", key.hex())))
    }

    fn read_disk(&self, key: &ImageKey) -> Option<CachedImage> {
        let path = self.entry_path(key)?;
        let mut f = File::open(&path).ok()?;
        let max = HEADER as u64 + self.shape.max_tiles as u64 * self.shape.tokens_per_tile as u64 * self.shape.n_embd as u64 * 4;
        let mut bytes = Vec::new();
        let read = f.metadata().ok().filter(|m| m.len() <= max).and_then(|_| f.by_ref().take(max + 1).read_to_end(&mut bytes).ok());
        match read.and_then(|_| decode_entry(&bytes, key, &self.shape).ok()) {
            Some(img) => {
                // least recently used = oldest mtime
                let _ = f.set_modified(SystemTime::now());
                Some(img)
            }
            None => {
                drop(f);
                bump(&self.counters.rejected);
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `img` on disk (atomically), then trims the folder to its cap. Failures are counted,
    /// not returned: the cache is an optimisation and a full disk must not fail a question.
    pub fn put_disk(&self, key: &ImageKey, img: &CachedImage) {
        let (Some(dir), Some(path)) = (&self.params.dir, self.entry_path(key)) else { return };
        let bytes = encode_entry(key, img, &self.shape);
        if bytes.len() as u64 > self.params.disk_bytes {
            return;
        }
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(".{}.{}.{}.tmp", key.hex(), std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        let written = std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            bump(&self.counters.disk_write_errors);
            return;
        }
        bump(&self.counters.disk_writes);
        let removed = evict(dir, self.params.disk_bytes, &path);
        self.counters.disk_evictions.fetch_add(removed, Ordering::Relaxed);
    }

    /// [`Self::put_memory`] and [`Self::put_disk`].
    pub fn put(&self, key: &ImageKey, img: &CachedImage) {
        self.put_memory(key, img);
        self.put_disk(key, img);
    }
}

/// Removes the least recently used entries of `dir` until they fit `cap` (never `keep`, the
/// entry just written), and temporary files a crashed writer left over an hour ago. Returns
/// the number of entries removed.
fn evict(dir: &Path, cap: u64, keep: &Path) -> u64 {
    let Ok(list) = std::fs::read_dir(dir) else { return 0 };
    let mut entries = Vec::new();
    let mut total = 0u64;
    for e in list.flatten() {
        let p = e.path();
        let Ok(meta) = e.metadata() else { continue };
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let stale = meta.modified().ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > Duration::from_secs(3600));
            if stale {
                let _ = std::fs::remove_file(&p);
            }
            continue;
        }
        if !meta.is_file() || p.extension().is_none_or(|x| x != EXT) {
            continue;
        }
        total += meta.len();
        if p != keep {
            entries.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), p, meta.len()));
        }
    }
    entries.sort();
    let mut removed = 0;
    for (_, p, len) in entries {
        if total <= cap {
            break;
        }
        if std::fs::remove_file(&p).is_ok() {
            removed += 1;
        }
        total -= len;
    }
    removed
}

/// An entry: header (magic, version, key, shape, payload length and SHA-256), then the rows as
/// little-endian f32.
fn encode_entry(key: &ImageKey, img: &CachedImage, shape: &RowShape) -> Vec<u8> {
    let payload: Vec<u8> = img.rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut b = Vec::with_capacity(HEADER + payload.len());
    b.extend_from_slice(MAGIC);
    b.extend(VERSION.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend_from_slice(&key.0);
    for v in [img.tiles as u32, img.grid.0, img.grid.1, shape.tokens_per_tile, shape.n_embd, 0] {
        b.extend(v.to_le_bytes());
    }
    b.extend((payload.len() as u64).to_le_bytes());
    b.extend_from_slice(&Sha256::digest(&payload));
    debug_assert_eq!(b.len(), HEADER);
    b.extend_from_slice(&payload);
    b
}

/// Why a disk entry was refused (for tests and debugging; callers only see a miss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Short,
    Magic,
    Version,
    Key,
    Shape,
    Length,
    Checksum,
}

fn decode_entry(b: &[u8], key: &ImageKey, shape: &RowShape) -> Result<CachedImage, Refused> {
    if b.len() < HEADER {
        return Err(Refused::Short);
    }
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    if &b[..8] != MAGIC {
        return Err(Refused::Magic);
    }
    if u32_at(8) != VERSION {
        return Err(Refused::Version);
    }
    if b[16..48] != key.0 {
        return Err(Refused::Key);
    }
    let (tiles, gx, gy, tpt, embd) = (u32_at(48), u32_at(52), u32_at(56), u32_at(60), u32_at(64));
    let grid_tiles = gx as u64 * gy as u64;
    if tpt != shape.tokens_per_tile
        || embd != shape.n_embd
        || tiles == 0
        || tiles > shape.max_tiles
        || grid_tiles == 0
        || grid_tiles > tiles as u64
    {
        return Err(Refused::Shape);
    }
    let len = u64::from_le_bytes(b[72..80].try_into().expect("8 bytes"));
    let want = tiles as u64 * tpt as u64 * embd as u64 * 4;
    if len != want || b.len() as u64 != HEADER as u64 + want {
        return Err(Refused::Length);
    }
    let payload = &b[HEADER..];
    if Sha256::digest(payload)[..] != b[80..112] {
        return Err(Refused::Checksum);
    }
    let rows: Arc<[f32]> = payload.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    Ok(CachedImage { tiles: tiles as usize, grid: (gx, gy), rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::decode::{from_rgb8, ImageLimits};

    const SHAPE: RowShape = RowShape { tokens_per_tile: 4, n_embd: 8, max_tiles: 7 };

    fn img(tiles: usize, seed: f32) -> CachedImage {
        let rows: Arc<[f32]> = (0..tiles * 32).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
        CachedImage { tiles, grid: (tiles as u32, 1), rows }
    }

    fn key(n: u8) -> ImageKey {
        ImageKey([n; 32])
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sail-cache-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn disk_cache(d: &Path, cap: u64) -> ImageCache {
        ImageCache::new(CacheParams { memory_bytes: 0, dir: Some(d.to_path_buf()), disk_bytes: cap }, SHAPE).unwrap()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn entries_round_trip_bit_for_bit() {
        let mut i = img(3, 0.5);
        // values a text format would lose: -0.0, subnormal, NaN payload
        let mut v = i.rows.to_vec();
        v[0] = -0.0;
        v[1] = f32::from_bits(1);
        v[2] = f32::from_bits(0x7fc0_1234);
        i.rows = v.into();
        let d = dir("roundtrip");
        let c = disk_cache(&d, 1 << 20);
        c.put(&key(1), &i);
        let (got, hit) = c.get(&key(1)).expect("a disk hit");
        assert_eq!(hit, Hit::Disk);
        assert_eq!(bits(&got.rows), bits(&i.rows));
        assert_eq!((got.tiles, got.grid), (3, (3, 1)));
        assert_eq!(c.stats().disk_hits, 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn every_broken_field_is_refused() {
        let k = key(7);
        let good = encode_entry(&k, &img(2, 1.0), &SHAPE);
        assert!(decode_entry(&good, &k, &SHAPE).is_ok());
        let with = |at: usize, f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            decode_entry(&b, &k, &SHAPE).map(|_| ()).map_err(|e| (at, e))
        };
        assert_eq!(with(0, &|b| b[0] ^= 1), Err((0, Refused::Magic)));
        assert_eq!(with(8, &|b| b[8] = 2), Err((8, Refused::Version)));
        assert_eq!(with(20, &|b| b[20] ^= 1), Err((20, Refused::Key)));
        assert_eq!(with(48, &|b| b[48] = 9), Err((48, Refused::Shape))); // tiles > max_tiles
        assert_eq!(with(52, &|b| b[52] = 3), Err((52, Refused::Shape))); // grid larger than the tiles
        assert_eq!(with(64, &|b| b[64] = 16), Err((64, Refused::Shape))); // other n_embd
        assert_eq!(with(72, &|b| b[72] ^= 4), Err((72, Refused::Length)));
        assert_eq!(with(HEADER + 5, &|b| b[HEADER + 5] ^= 0x10), Err((HEADER + 5, Refused::Checksum)));
        assert_eq!(with(90, &|b| b[90] ^= 1), Err((90, Refused::Checksum)));
        assert_eq!(with(1, &|b| b.truncate(b.len() - 4)), Err((1, Refused::Length)));
        assert_eq!(with(2, &|b| b.push(0)), Err((2, Refused::Length)));
        assert_eq!(with(3, &|b| b.truncate(HEADER - 1)), Err((3, Refused::Short)));
        // an entry for another key is foreign even when intact
        assert_eq!(decode_entry(&good, &key(8), &SHAPE).map(|_| ()), Err(Refused::Key));
    }

    #[test]
    fn a_bad_file_is_a_miss_and_is_removed() {
        let d = dir("bad");
        let c = disk_cache(&d, 1 << 20);
        let k = key(3);
        c.put(&k, &img(2, 0.0));
        let p = c.entry_path(&k).unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 10).unwrap();
        assert!(c.get(&k).is_none());
        assert!(!p.exists(), "a refused entry is removed");
        let s = c.stats();
        assert_eq!((s.rejected, s.misses, s.disk_hits), (1, 1, 0));
        // a file that is not an entry at all
        std::fs::write(&p, b"not an entry").unwrap();
        assert!(c.get(&k).is_none());
        assert_eq!(c.stats().rejected, 2);
        // replaced by the next store
        c.put(&k, &img(2, 0.0));
        assert_eq!(c.get(&k).unwrap().1, Hit::Disk);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn disk_eviction_keeps_the_recently_used_under_the_cap() {
        let d = dir("evict");
        let entry = (HEADER + 2 * 32 * 4) as u64;
        let c = disk_cache(&d, entry * 2 + entry / 2);
        let old = SystemTime::now() - Duration::from_secs(100);
        c.put(&key(1), &img(2, 1.0));
        c.put(&key(2), &img(2, 2.0));
        // make the order unambiguous whatever the file system's timestamp resolution
        for (k, age) in [(1u8, 20u64), (2, 10)] {
            File::options().write(true).open(c.entry_path(&key(k)).unwrap()).unwrap().set_modified(old + Duration::from_secs(age)).unwrap();
        }
        assert!(c.get(&key(1)).is_some()); // key 1 is now the most recent
        c.put(&key(3), &img(2, 3.0));
        let exists = |n| c.entry_path(&key(n)).unwrap().exists();
        assert!(exists(1) && !exists(2) && exists(3));
        assert_eq!(c.stats().disk_evictions, 1);
        let total: u64 = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
        assert!(total <= entry * 2 + entry / 2, "{total}");
        // an entry larger than the whole cap is not stored
        let tiny = disk_cache(&d, entry - 1);
        tiny.put(&key(4), &img(2, 4.0));
        assert!(!tiny.entry_path(&key(4)).unwrap().exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn memory_is_lru_under_its_cap() {
        let one = img(2, 0.0).bytes();
        let c = ImageCache::new(CacheParams { memory_bytes: one * 2, dir: None, disk_bytes: 0 }, SHAPE).unwrap();
        c.put(&key(1), &img(2, 1.0));
        c.put(&key(2), &img(2, 2.0));
        assert_eq!(c.get(&key(1)).unwrap().1, Hit::Memory);
        c.put(&key(3), &img(2, 3.0));
        assert!(c.get(&key(2)).is_none());
        assert!(c.get(&key(1)).is_some() && c.get(&key(3)).is_some());
        let s = c.stats();
        assert_eq!((s.memory_entries, s.memory_bytes, s.memory_evictions), (2, 2 * one as u64, 1));
        let off = ImageCache::new(CacheParams { memory_bytes: 0, dir: None, disk_bytes: 0 }, SHAPE).unwrap();
        off.put(&key(1), &img(1, 0.0));
        assert!(off.get(&key(1)).is_none());
    }

    #[test]
    fn keys_change_with_every_input() {
        let f = |s: &[u8]| {
            let mut h = Sha256::new();
            h.update(s);
            EncoderId(h.finalize().into())
        };
        let (e1, e2) = (f(b"a"), f(b"b"));
        let cfg = PreprocessConfig::new(448, [0.5; 3], [0.5; 3], 10);
        let k = |e: &EncoderId, c: &PreprocessConfig, s: ImageSource| ImageKey::new(e, c, s);
        let base = k(&e1, &cfg, ImageSource::File(b"png"));
        assert_eq!(base, k(&e1, &cfg, ImageSource::File(b"png")));
        assert_ne!(base, k(&e2, &cfg, ImageSource::File(b"png")));
        assert_ne!(base, k(&e1, &cfg, ImageSource::File(b"pnh")));
        let mut c2 = cfg.clone();
        c2.max_tiles = 1;
        assert_ne!(base, k(&e1, &c2, ImageSource::File(b"png")));
        let mut c3 = cfg.clone();
        c3.mean[2] = 0.25;
        assert_ne!(base, k(&e1, &c3, ImageSource::File(b"png")));
        let mut c4 = cfg.clone();
        c4.limits = ImageLimits { max_pixels: 100 };
        assert_ne!(base, k(&e1, &c4, ImageSource::File(b"png")));
        let a = from_rgb8(2, 1, &[1, 2, 3, 4, 5, 6]).unwrap();
        let b = from_rgb8(1, 2, &[1, 2, 3, 4, 5, 6]).unwrap();
        assert_ne!(k(&e1, &cfg, ImageSource::Decoded(&a)), k(&e1, &cfg, ImageSource::Decoded(&b)));
        assert_eq!(k(&e1, &cfg, ImageSource::Decoded(&a)), k(&e1, &cfg, ImageSource::Decoded(&a.clone())));
    }
}
