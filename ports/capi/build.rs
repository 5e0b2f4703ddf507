//! The cdylib is installed as `libsail.so` (cargo names it after the crate, `libsail_capi.so`);
//! giving it that SONAME makes programs linked with `-lsail` record the installed name.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(os.as_str(), "linux" | "android" | "freebsd" | "netbsd" | "openbsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsail.so");
    }
}
