//! Compiles `src/shim.cpp` (llama.cpp calls inside try/catch) against the headers of the very
//! llama.cpp build `llama-cpp-sys-2` made, found through its `links` metadata.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    let include = std::env::var("DEP_LLAMA_GGML_CMAKE_DIR").ok().and_then(|c| include_dir(Path::new(&c))).or_else(sibling_include);
    let include =
        include.expect("llama.h of llama-cpp-sys-2's build not found (DEP_LLAMA_GGML_CMAKE_DIR or build/llama-cpp-sys-2-*/out/include)");
    cc::Build::new().cpp(true).std("c++17").file("src/shim.cpp").include(&include).warnings(true).compile("sail_ggml_shim");
}

/// This target folder's `build/` directory.
fn build_dir() -> Option<PathBuf> {
    let out = PathBuf::from(std::env::var("OUT_DIR").ok()?);
    out.ancestors().find(|a| a.file_name().is_some_and(|n| n == "build")).map(Path::to_path_buf)
}

/// `<out>/lib/cmake` → `<out>/include`. A target folder copied from another keeps the old
/// folder's path in llama-cpp-sys-2's cached build output; then the same build folder is looked
/// up under this target folder.
fn include_dir(cmake: &Path) -> Option<PathBuf> {
    let direct = cmake.join("../../include");
    if direct.join("llama.h").is_file() {
        return Some(direct);
    }
    let s = cmake.to_string_lossy();
    let rel = &s[s.rfind("/build/")? + "/build/".len()..];
    let here = build_dir()?.join(rel).join("../../include");
    here.join("llama.h").is_file().then_some(here)
}

/// Any llama-cpp-sys-2 build output in this target folder (the crate is pinned, so every one
/// holds the same headers).
fn sibling_include() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(build_dir()?)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("llama-cpp-sys-2-")))
        .map(|p| p.join("out/include"))
        .filter(|p| p.join("llama.h").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}
