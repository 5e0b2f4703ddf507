//! Shared helpers for sail's integration tests: golden cases from the independent reference,
//! tiny checkpoints generated on demand (and cached per build), `.npy` I/O, error metrics, and
//! a llama.cpp harness for checking the language GGUF directly.

pub mod golden;
pub mod llama;
pub mod metrics;
pub mod npy;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A scratch folder for generated checkpoints and converted models, private to this build of
/// the calling test binary: its name includes the binary's size and modification time, so a
/// rebuilt converter never sees files an older one wrote. Folders of other builds older than
/// two hours are removed.
pub fn scratch() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("SAIL_TEST_SCRATCH").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("sail-test-cache"));
        let exe = std::env::current_exe().expect("test binary path");
        let meta = std::fs::metadata(&exe).expect("test binary metadata");
        let stamp = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
        let key = hex_digest(format!("{}|{}|{stamp}", exe.display(), meta.len()).as_bytes());
        let dir = base.join(&key[..16]);
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let old = e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 7200);
                if e.path() != dir && old {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        std::fs::create_dir_all(&dir).expect("create the test scratch folder");
        dir
    })
    .clone()
}

static GEN_LOCK: Mutex<()> = Mutex::new(());

/// Generates (once per argument list; cached across test runs) a checkpoint with
/// `sail-gen ckpt` arguments `argv`, and returns its folder.
pub fn checkpoint(argv: &[&str]) -> PathBuf {
    let _g = GEN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let key = hex_digest(argv.join(" ").as_bytes());
    let dir = scratch().join(format!("ckpt-{}", &key[..16]));
    let done = dir.join(".complete");
    if done.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut full: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    full.extend(["--out".to_string(), dir.display().to_string()]);
    let args = sail_gen::ckpt::Args::from_argv(&full).expect("generator arguments");
    sail_gen::ckpt::generate(&args).expect("generate a checkpoint");
    std::fs::write(&done, b"").expect("mark checkpoint complete");
    dir
}

/// Converts `ckpt` with `flags` (sail-convert's preset and vision flags) into the scratch
/// folder, once per (checkpoint, flags); returns the language GGUF's path.
pub fn converted(ckpt: &Path, name: &str, preset: sail_format::quant::Preset, vision: sail_format::quant::VisionType) -> PathBuf {
    let _g = GEN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let key = hex_digest(format!("{}|{:?}|{:?}", ckpt.display(), preset, vision).as_bytes());
    let out = scratch().join(format!("{name}-{}-{}.gguf", preset.flag(), &key[..12]));
    if out.exists() && sail_convert::vision_path_for(&out).exists() {
        return out;
    }
    let opts =
        sail_convert::Options { input: ckpt.to_path_buf(), output: out.clone(), preset, vision_type: vision, threads: 0, progress: false };
    sail_convert::convert(&opts, &std::sync::atomic::AtomicBool::new(false)).expect("conversion");
    out
}

/// A `width` x `height` 8-bit grey PNG (a horizontal ramp) in the scratch folder, written once
/// per size. Every row is the same, so with the Up filter it compresses to a few hundred KB
/// however large it is: cheap to keep, fast to decode; for pixel-budget tests.
pub fn grey_ramp_png(width: u32, height: u32) -> PathBuf {
    let _g = GEN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch().join(format!("ramp-{width}x{height}.png"));
    if out.exists() {
        return out;
    }
    let part = out.with_extension("png.part");
    let file = std::fs::File::create(&part).expect("create the test PNG");
    let mut enc = png::Encoder::new(file, width, height);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    enc.set_filter(png::Filter::Up);
    let mut w = enc.write_header().expect("PNG header");
    let row: Vec<u8> = (0..width).map(|x| (u64::from(x) * 255 / u64::from(width.max(2) - 1)) as u8).collect();
    let mut stream = w.stream_writer().expect("PNG stream");
    for _ in 0..height {
        std::io::Write::write_all(&mut stream, &row).expect("PNG rows");
    }
    stream.finish().expect("PNG end");
    w.finish().expect("PNG end");
    std::fs::rename(&part, &out).expect("rename the test PNG");
    out
}

pub fn hex_digest(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}
