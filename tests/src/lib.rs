//! Shared helpers for sail's integration tests: golden cases from the independent reference,
//! tiny checkpoints generated on demand (and cached per source state), `.npy` I/O, error
//! metrics, and a llama.cpp harness for checking the language GGUF directly.

pub mod golden;
pub mod llama;
pub mod metrics;
pub mod npy;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The scratch folder for generated checkpoints, converted models and test images, shared by
/// every test binary built from the same generator/converter sources (`build.rs` fingerprints
/// them), so a suite run generates and converts each tiny model once, and a changed converter
/// never sees files an older one wrote. Folders of other source states older than two hours
/// are removed. Files are created under temporary names and renamed, so test binaries running
/// at the same time can share it.
pub fn scratch() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("SAIL_TEST_SCRATCH").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("sail-test-cache"));
        let dir = base.join(env!("SAIL_TESTKIT_SOURCES"));
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

/// A name for a temporary sibling of `path`, unique to this process and call.
fn temp_sibling(path: &Path) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

static GEN_LOCK: Mutex<()> = Mutex::new(());

/// Generates (once per argument list; cached across test runs) a checkpoint with
/// `sail-gen ckpt` arguments `argv`, and returns its folder.
pub fn checkpoint(argv: &[&str]) -> PathBuf {
    let _g = GEN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let key = hex_digest(argv.join(" ").as_bytes());
    let dir = scratch().join(format!("ckpt-{}", &key[..16]));
    if dir.is_dir() {
        return dir;
    }
    // generated beside, then renamed into place: another test binary may be doing the same
    let tmp = temp_sibling(&dir);
    let mut full: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    full.extend(["--out".to_string(), tmp.display().to_string()]);
    let args = sail_gen::ckpt::Args::from_argv(&full).expect("generator arguments");
    sail_gen::ckpt::generate(&args).expect("generate a checkpoint");
    if std::fs::rename(&tmp, &dir).is_err() {
        assert!(dir.is_dir(), "could not move the checkpoint into {}", dir.display());
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// Converts `ckpt` with `flags` (sail-convert's preset and vision flags) into the scratch
/// folder, once per (checkpoint, flags); returns the language GGUF's path.
pub fn converted(ckpt: &Path, name: &str, preset: sail_format::quant::Preset, vision: sail_format::quant::VisionType) -> PathBuf {
    let _g = GEN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let key = hex_digest(format!("{}|{:?}|{:?}", ckpt.display(), preset, vision).as_bytes());
    let out = scratch().join(format!("{name}-{}-{}.gguf", preset.flag(), &key[..12]));
    let vision_out = sail_convert::vision_path_for(&out);
    if out.exists() && vision_out.exists() {
        return out;
    }
    // converted in a private folder under the final names (the language file records its vision
    // file's name), then both moved into place, vision first: a language file in place means its
    // vision file is too
    let tmp_dir = temp_sibling(&out);
    std::fs::create_dir_all(&tmp_dir).expect("create a conversion folder");
    let tmp = tmp_dir.join(out.file_name().expect("file name"));
    let opts =
        sail_convert::Options { input: ckpt.to_path_buf(), output: tmp.clone(), preset, vision_type: vision, threads: 0, progress: false };
    sail_convert::convert(&opts, &std::sync::atomic::AtomicBool::new(false)).expect("conversion");
    std::fs::rename(sail_convert::vision_path_for(&tmp), &vision_out).expect("move the converted vision file into place");
    std::fs::rename(&tmp, &out).expect("move the converted language file into place");
    let _ = std::fs::remove_dir_all(&tmp_dir);
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
    let part = temp_sibling(&out);
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
