//! `include/sail.h` is written by hand; these tests keep it equal to the Rust exports: the same
//! set of functions with the same parameter and return types, the same constants with the same
//! values, the same struct fields, and (compiled by the system C compiler) the same struct
//! sizes, alignments and field offsets.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

fn header() -> String {
    std::fs::read_to_string(common::include_dir().join("sail.h")).unwrap()
}

fn source() -> String {
    std::fs::read_to_string(common::capi_dir().join("src/lib.rs")).unwrap()
}

/// The header without comments and preprocessor lines.
fn c_code(h: &str) -> String {
    let mut out = String::new();
    let mut rest = h;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("*/").expect("unterminated comment") + i + 2;
        out.push(' ');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.lines().map(|l| l.split("//").next().unwrap()).filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n")
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A C type (with or without a parameter name) in Rust spelling: `const char *path` →
/// `*const c_char`, `struct sail_model_params` → `sail_model_params`, `void` → `()`.
fn c_to_rust(decl: &str, has_name: bool) -> String {
    let d = decl.replace('*', " * ");
    let mut words: Vec<&str> = d.split_whitespace().collect();
    if has_name {
        let last = words.pop().expect("empty declaration");
        assert!(last != "*", "unnamed parameter in {decl:?}");
    }
    let pointer = words.iter().filter(|w| **w == "*").count();
    assert!(pointer <= 1, "multi-level pointer in {decl:?}");
    let is_const = words.first() == Some(&"const");
    let base: Vec<&str> = words.iter().copied().filter(|w| *w != "*" && *w != "const" && *w != "struct").collect();
    assert_eq!(base.len(), 1, "cannot read the type of {decl:?}");
    let base = match base[0] {
        "char" => "c_char",
        "void" => "c_void",
        "int32_t" => "i32",
        "uint32_t" => "u32",
        "uint64_t" => "u64",
        "uint8_t" => "u8",
        "size_t" => "usize",
        "float" => "f32",
        "double" => "f64",
        other => other,
    };
    match (pointer, is_const) {
        (0, _) if base == "c_void" => "()".into(),
        (0, _) => base.into(),
        (_, true) => format!("*const {base}"),
        (_, false) => format!("*mut {base}"),
    }
}

/// Splits a parameter list at top-level commas.
fn split_params(s: &str) -> Vec<String> {
    let (mut depth, mut cur, mut out) = (0i32, String::new(), Vec::new());
    let chars: Vec<char> = s.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        match ch {
            '(' | '<' => depth += 1,
            ')' => depth -= 1,
            '>' if i > 0 && chars[i - 1] != '-' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur);
    out.into_iter().map(|p| squash(&p)).filter(|p| !p.is_empty()).collect()
}

#[derive(Debug, PartialEq)]
struct Sig {
    params: Vec<String>,
    ret: String,
}

fn header_functions(h: &str) -> BTreeMap<String, Sig> {
    let mut out = BTreeMap::new();
    for stmt in c_code(h).split(';') {
        let stmt = stmt.rsplit(['{', '}']).next().unwrap();
        let stmt = squash(stmt);
        if stmt.starts_with("typedef") || !stmt.contains('(') {
            continue;
        }
        let open = stmt.find('(').unwrap();
        let head = stmt[..open].trim_end();
        let name_at = head.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map(|i| i + 1).unwrap_or(0);
        let name = &head[name_at..];
        assert!(name.starts_with("sail_"), "a function in sail.h not named sail_*: {stmt}");
        let close = stmt.rfind(')').unwrap();
        let params = stmt[open + 1..close].trim();
        let params = if params == "void" { vec![] } else { split_params(params).iter().map(|p| c_to_rust(p, true)).collect() };
        let sig = Sig { params, ret: c_to_rust(&head[..name_at], false) };
        assert!(out.insert(name.to_string(), sig).is_none(), "{name} is declared twice in sail.h");
    }
    out
}

/// `#[no_mangle] pub [unsafe] extern "C" fn` items of the crate's source.
fn rust_exports(src: &str) -> BTreeMap<String, Sig> {
    let mut out = BTreeMap::new();
    let mut exported_next = false;
    let lines: Vec<&str> = src.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t == "#[no_mangle]" {
            exported_next = true;
            continue;
        }
        let Some(rest) = t.strip_prefix("pub extern \"C\" fn ").or_else(|| t.strip_prefix("pub unsafe extern \"C\" fn ")) else {
            if !t.starts_with("///") && !t.starts_with("#[") && !t.is_empty() {
                exported_next = false;
            }
            continue;
        };
        let name = rest.split('(').next().unwrap().trim().to_string();
        assert!(exported_next, "{name} is extern \"C\" but lacks #[no_mangle]");
        exported_next = false;
        // the signature, possibly over several lines, up to the body's brace
        let mut sig = String::new();
        for l in &lines[i..] {
            sig.push_str(l);
            sig.push(' ');
            if l.trim_end().ends_with('{') {
                break;
            }
        }
        let open = sig.find('(').unwrap();
        let mut depth = 0;
        let mut close = open;
        for (k, ch) in sig[open..].char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let params = split_params(&sig[open + 1..close])
            .iter()
            .map(|p| squash(p.split_once(':').unwrap_or_else(|| panic!("{name}: parameter {p:?}")).1))
            .collect();
        let tail = sig[close + 1..].split('{').next().unwrap().trim();
        let ret = tail.strip_prefix("->").map(squash).unwrap_or_else(|| "()".into());
        assert!(out.insert(name.clone(), Sig { params, ret }).is_none(), "{name} exported twice");
    }
    out
}

#[test]
fn header_declares_exactly_the_rust_exports() {
    let c = header_functions(&header());
    let r = rust_exports(&source());
    assert!(c.len() >= 15, "parsed only {} declarations from sail.h: {:?}", c.len(), c.keys());
    let only_c: Vec<&String> = c.keys().filter(|k| !r.contains_key(*k)).collect();
    let only_rust: Vec<&String> = r.keys().filter(|k| !c.contains_key(*k)).collect();
    assert!(only_c.is_empty() && only_rust.is_empty(), "declared in sail.h only: {only_c:?}; exported by Rust only: {only_rust:?}");
    for (name, sig) in &c {
        let rs = &r[name];
        assert_eq!(sig.params.len(), rs.params.len(), "{name}: parameter count (sail.h {:?}, Rust {:?})", sig.params, rs.params);
        assert_eq!(sig, rs, "{name}: types differ");
    }
    eprintln!("{} functions agree: {:?}", c.len(), c.keys().collect::<Vec<_>>());
}

/// `NAME = value` constants of the header's enums.
fn header_constants(h: &str) -> BTreeMap<String, i64> {
    let code = c_code(h);
    let mut out = BTreeMap::new();
    for piece in code.split([',', '{', '}']) {
        let Some((name, value)) = piece.split_once('=') else { continue };
        let name = name.trim();
        if name.starts_with("SAIL_") {
            out.insert(name.to_string(), value.trim().parse::<i64>().unwrap_or_else(|_| panic!("{name} = {value:?}")));
        }
    }
    out
}

fn rust_constants(src: &str) -> BTreeMap<String, i64> {
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("pub const SAIL_"))
        .map(|l| {
            let (name, rest) = l.split_once(':').unwrap();
            let value = rest.split_once('=').unwrap().1.trim().trim_end_matches(';');
            (format!("SAIL_{name}"), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn status_codes_and_enum_values_match() {
    let c = header_constants(&header());
    let r = rust_constants(&source());
    assert!(c.contains_key("SAIL_OK") && c.contains_key("SAIL_ERR_INTERNAL"), "{c:?}");
    assert_eq!(c, r, "constants in sail.h vs src/lib.rs");
    // and the compiled values are the ones the parser saw
    assert_eq!(r["SAIL_OK"], sail_capi::SAIL_OK as i64);
    assert_eq!(r["SAIL_ERR_INTERNAL"], sail_capi::SAIL_ERR_INTERNAL as i64);
    // every status has its own text
    let mut seen = std::collections::HashSet::new();
    for (name, v) in c.iter().filter(|(n, _)| n.starts_with("SAIL_OK") || n.starts_with("SAIL_ERR_")) {
        // SAFETY: sail_status_string returns static NUL-terminated text.
        let s = unsafe { std::ffi::CStr::from_ptr(sail_capi::sail_status_string(*v as i32)) }.to_str().unwrap();
        assert!(s != "unknown status" && seen.insert(s), "{name}: {s:?}");
    }
}

/// Struct name → (field name, Rust type) from the header.
fn header_structs(h: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let code = c_code(h);
    let mut out = BTreeMap::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("struct ") {
        rest = &rest[i + 7..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let after = rest[name.len()..].trim_start();
        if !after.starts_with('{') {
            continue;
        }
        let body = &after[1..after.find('}').unwrap()];
        let fields = body
            .split(';')
            .map(squash)
            .filter(|f| !f.is_empty())
            .map(|f| {
                let field = f.rsplit([' ', '*']).next().unwrap().to_string();
                (field, c_to_rust(&f, true))
            })
            .collect();
        out.insert(name, fields);
    }
    out
}

fn rust_structs(src: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = src.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() != "#[repr(C)]" {
            continue;
        }
        let decl = lines[i + 1..].iter().find(|l| l.starts_with("pub struct ")).unwrap();
        let name = decl["pub struct ".len()..].split_whitespace().next().unwrap().to_string();
        let start = lines.iter().position(|l| l == decl).unwrap();
        let fields = lines[start + 1..]
            .iter()
            .take_while(|l| l.trim() != "}")
            .filter_map(|l| l.trim().strip_prefix("pub "))
            .map(|f| {
                let (n, t) = f.split_once(':').unwrap();
                (n.trim().to_string(), squash(t.trim().trim_end_matches(',')))
            })
            .collect();
        out.insert(name, fields);
    }
    out
}

#[test]
fn structs_have_the_same_fields() {
    let c = header_structs(&header());
    let r = rust_structs(&source());
    assert_eq!(c.len(), 4, "{:?}", c.keys());
    assert_eq!(c, r);
}

macro_rules! layout {
    ($($ty:ident { $($f:ident),* $(,)? })*) => {{
        let mut v: Vec<(String, usize)> = Vec::new();
        $(
            v.push((format!("{}.size", stringify!($ty)), std::mem::size_of::<sail_capi::$ty>()));
            v.push((format!("{}.align", stringify!($ty)), std::mem::align_of::<sail_capi::$ty>()));
            $( v.push((format!("{}.{}", stringify!($ty), stringify!($f)), std::mem::offset_of!(sail_capi::$ty, $f))); )*
        )*
        v
    }};
}

#[test]
fn struct_layouts_agree_with_the_c_compiler() {
    let rust = layout! {
        sail_model_params { mmproj_path, vision_device, n_threads, n_gpu_layers, use_mmap, verbose, rpc_servers, tensor_split, n_tensor_split, cache_dir, cache_disk_bytes, cache_memory_bytes, repack }
        sail_session_params { system_prompt, max_pixels, n_ctx, n_batch, n_threads, max_tiles, kv_type, parse_special }
        sail_generate_params { n_predict, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed, ignore_eos, think }
        sail_generation_info { n_tokens, n_prompt_tokens, n_image_tokens, n_tiles, stop_reason, n_past, vision_ms, prefill_ms, decode_ms, n_tiles_encoded }
    };
    // the list above must name every field the header has
    let structs = header_structs(&header());
    let listed: Vec<String> = rust.iter().map(|(k, _)| k.clone()).filter(|k| !k.ends_with(".size") && !k.ends_with(".align")).collect();
    let declared: Vec<String> = structs.iter().flat_map(|(s, fs)| fs.iter().map(move |(f, _)| format!("{s}.{f}"))).collect();
    let (mut a, mut b) = (listed.clone(), declared);
    a.sort();
    b.sort();
    assert_eq!(a, b, "update the layout! list");

    let mut c = String::from("#include \"sail.h\"\n#include <stdio.h>\n#include <stddef.h>\n#include <stdalign.h>\nint main(void) {\n");
    for (key, _) in &rust {
        let (ty, what) = key.split_once('.').unwrap();
        let expr = match what {
            "size" => format!("sizeof(struct {ty})"),
            "align" => format!("alignof(struct {ty})"),
            f => format!("offsetof(struct {ty}, {f})"),
        };
        c.push_str(&format!("    printf(\"{key} %zu\\n\", (size_t){expr});\n"));
    }
    c.push_str("    return 0;\n}\n");
    let d = common::tmp("layout");
    let src = d.join("layout.c");
    std::fs::write(&src, c).unwrap();
    let exe = d.join("layout");
    let mut cmd = Command::new(common::cc());
    cmd.args(["-std=c11", "-Wall", "-Werror"]).arg("-I").arg(common::include_dir()).arg(&src).arg("-o").arg(&exe);
    common::compile(cmd);
    let out = common::text(&common::run(&exe, &[]).stdout);
    let from_c: BTreeMap<String, usize> =
        out.lines().map(|l| l.split_once(' ').unwrap()).map(|(k, v)| (k.to_string(), v.parse().unwrap())).collect();
    for (key, v) in &rust {
        assert_eq!(from_c.get(key), Some(v), "{key}: C says {:?}, Rust {v}", from_c.get(key));
    }
    eprintln!("{} sizes/offsets agree", rust.len());
}

#[test]
fn header_compiles_as_c_and_cxx() {
    let d = common::tmp("hdr");
    for (compiler, lang, std) in [(common::cc(), "c", "-std=c99"), ("c++".to_string(), "c++", "-std=c++11")] {
        let mut cmd = Command::new(&compiler);
        cmd.args(["-fsyntax-only", "-Wall", "-Wextra", "-pedantic", "-Werror", std, "-x", lang]).arg(common::include_dir().join("sail.h"));
        cmd.current_dir(&d);
        common::compile(cmd);
    }
}
