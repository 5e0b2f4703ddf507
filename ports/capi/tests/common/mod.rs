//! What the C-API tests share: the tiny model, the built archives, the documented link lines,
//! and reference tokens from the library itself.

#![allow(dead_code)]

use sail::session::{GenerateParams, Model, ModelParams, Session, SessionParams};
use sail_format::quant::{Preset, VisionType};
use sail_testkit::golden::Case;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// System libraries the static archive needs, exactly as README.md gives them (from
/// `cargo rustc --release -p sail-capi --lib -- --print native-static-libs`).
pub const LINK_LIBS: &[&str] = &["-lgomp", "-lstdc++", "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];

/// The fully static variant's libraries (after the archive), as README.md gives them.
pub const STATIC_LINK_FLAGS: &[&str] =
    &["-static-libstdc++", "-static-libgcc", "-Wl,-Bstatic", "-lgomp", "-Wl,-Bdynamic", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];

/// What an archive built with a GPU backend adds to either link line, as README.md gives it:
/// the Vulkan loader for `--features vulkan` (the test suite's default build has it).
pub fn backend_link_libs() -> Vec<&'static str> {
    let regs = sail::ggml::registries();
    let mut libs = Vec::new();
    if regs.iter().any(|r| r == "Vulkan") {
        libs.push("-lvulkan");
    }
    libs
}

/// This crate's folder, as cargo sets it when running the test (the compile-time `env!` value
/// may name another checkout sharing the target folder).
pub fn capi_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

pub fn include_dir() -> PathBuf {
    capi_dir().join("include")
}

pub fn example(name: &str) -> PathBuf {
    capi_dir().join("examples").join(name)
}

/// A folder private to this test process.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sail-capi-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The cargo output folders this test binary came from: `$TARGET/release/deps` and its parent.
fn build_dirs() -> Vec<PathBuf> {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps folder").to_path_buf();
    let profile = deps.parent().expect("profile folder").to_path_buf();
    vec![deps, profile]
}

/// A library file cargo built for this package, preferring the copy built together with this
/// test binary (`deps/`) over the uplifted one.
pub fn built(file: &str) -> PathBuf {
    let dirs = build_dirs();
    dirs.iter().map(|d| d.join(file)).find(|p| p.is_file()).unwrap_or_else(|| panic!("{file} was not built: looked in {dirs:?}"))
}

/// A folder holding the libraries under their installed names, libsail.a and libsail.so
/// (symlinks to cargo's libsail_capi.*). Made once per test process: tests run in parallel, and
/// one re-creating the links while another links against them was a race.
pub fn install_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tmp("lib");
        for (from, to) in [("libsail_capi.a", "libsail.a"), ("libsail_capi.so", "libsail.so")] {
            let link = d.join(to);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(built(from), &link).unwrap();
        }
        d
    })
    .clone()
}

pub fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Runs a compiler command, failing the test with its output when it fails.
pub fn compile(mut cmd: Command) {
    let shown = format!("{cmd:?}");
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(o.status.success(), "{shown} failed:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

/// `cc -O2 SRC -I include libsail.a <LINK_LIBS> -o OUT` (with warnings as errors).
pub fn build_static(src: &Path, out: &Path) -> PathBuf {
    let lib = install_dir().join("libsail.a");
    let mut c = Command::new(cc());
    c.args(["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(src)
        .arg("-I")
        .arg(include_dir())
        .arg(&lib)
        .args(LINK_LIBS)
        .args(backend_link_libs())
        .arg("-o")
        .arg(out);
    compile(c);
    out.to_path_buf()
}

pub fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new(exe).args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The golden case's tiny dense model (f32, converted once per test binary) and its image.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub gguf: PathBuf,
    pub image: PathBuf,
    prompt: String,
}

/// Made once per test binary: the testkit's image writer is not safe to call from parallel
/// tests of one process (they share a temporary name).
pub fn small_dense() -> Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let case = Case::load("small-dense").unwrap();
            let argv = case.generator_argv();
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let gguf = sail_testkit::converted(&sail_testkit::checkpoint(&argv), "small-dense", Preset::F32, VisionType::F32);
            let image = case.image().expect("small-dense has an image");
            Fixture { gguf, image, prompt: case.json["prompt"].as_str().unwrap().to_string() }
        })
        .clone()
}

impl Fixture {
    pub fn prompt(&self) -> String {
        self.prompt.clone()
    }
}

/// Greedy tokens from the Rust library with the parameters `sail run` uses for
/// `-m GGUF --image IMAGE -p PROMPT --temp 0 --ignore-eos -n N` (and the C defaults give).
pub fn library_tokens(gguf: &Path, image: &Path, prompt: &str, n: usize) -> (Vec<i32>, String) {
    sail::ggml::llama_init(false);
    let model = Arc::new(Model::load(gguf, &ModelParams::default()).unwrap());
    let f32_file =
        sail::format::gguf::GgufFile::open(gguf).unwrap().get(sail::format::keys::GENERAL_FILE_TYPE).and_then(|v| v.as_i64()) == Some(0);
    let sp = SessionParams { n_ctx: 0, n_batch: 512, n_threads: model.n_threads, kv_f32: f32_file, system: None, parse_special: false };
    let mut s = Session::new(model.clone(), sp);
    s.add_image(model.prepare_image_file(image, None, sail::vision::decode::ImageLimits::default()).unwrap()).unwrap();
    let gp = GenerateParams { n_predict: n, ignore_eos: true, ..Default::default() };
    let g = s.generate(prompt, &gp, |_, _| true).unwrap();
    (g.tokens, g.text)
}

/// The `sail` CLI next to this build, if it has been built.
pub fn sail_cli() -> Option<PathBuf> {
    build_dirs().last().map(|d| d.join("sail")).filter(|p| p.is_file())
}

/// Token ids from a line `PREFIX id id ...`.
pub fn ids_after(out: &str, prefix: &str) -> Vec<i32> {
    let line = out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"));
    line[prefix.len()..].split_whitespace().map(|t| t.parse().unwrap()).collect()
}
