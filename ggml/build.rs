//! Compiles `src/shim.cpp` (llama.cpp calls inside try/catch) against the headers of the very
//! llama.cpp build `llama-cpp-sys-2` made, found through its `links` metadata.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    let cmake =
        std::env::var("DEP_LLAMA_GGML_CMAKE_DIR").expect("llama-cpp-sys-2 reports where it installed ggml (DEP_LLAMA_GGML_CMAKE_DIR)");
    let include = include_dir(Path::new(&cmake));
    cc::Build::new().cpp(true).std("c++17").file("src/shim.cpp").include(&include).warnings(true).compile("sail_ggml_shim");
}

/// `<out>/lib/cmake` → `<out>/include`. A target folder copied from another keeps the old
/// folder's path in llama-cpp-sys-2's cached build output; then the same build folder is looked
/// up under this target folder.
fn include_dir(cmake: &Path) -> PathBuf {
    let direct = cmake.join("../../include");
    if direct.join("llama.h").is_file() {
        return direct;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let s = cmake.to_string_lossy();
    if let (Some(i), Some(build)) = (s.rfind("/build/"), out.ancestors().find(|a| a.file_name().is_some_and(|n| n == "build"))) {
        let here = build.join(&s[i + "/build/".len()..]).join("../../include");
        if here.join("llama.h").is_file() {
            return here;
        }
    }
    panic!("llama.h not found beside {}", cmake.display());
}
