//! sail-convert end to end through its binary: every bad input gets a clear, named error, a
//! non-zero exit and no output file; good input converts at every type.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_sail-convert");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sail-convert-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A pristine tiny bf16 checkpoint (single file unless `shards` > 1), generated once per run.
fn base(shards: u32) -> &'static Path {
    static ONE: OnceLock<PathBuf> = OnceLock::new();
    static THREE: OnceLock<PathBuf> = OnceLock::new();
    let cell = if shards > 1 { &THREE } else { &ONE };
    cell.get_or_init(|| {
        let d = tmp(&format!("base{shards}"));
        let argv: Vec<String> = ["--dtype", "bfloat16", "--seed", "1", "--shards", &shards.to_string(), "--out", d.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sail_gen::ckpt::generate(&sail_gen::ckpt::Args::from_argv(&argv).unwrap()).unwrap();
        d
    })
}

/// A private copy of a base checkpoint to break.
fn copy_of(shards: u32, name: &str) -> PathBuf {
    let d = tmp(name);
    for e in std::fs::read_dir(base(shards)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).arg("--quiet").output().expect("run sail-convert")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts failure with every `needles` in stderr and that `out_dir` holds no GGUF or temp file.
fn assert_fails(o: &Output, needles: &[&str], out_dir: &Path) {
    let e = stderr(o);
    assert!(!o.status.success(), "expected failure, got success:\n{e}");
    for n in needles {
        assert!(e.contains(n), "stderr lacks {n:?}:\n{e}");
    }
    assert!(!e.contains("panicked"), "panic:\n{e}");
    let left: Vec<_> =
        std::fs::read_dir(out_dir).map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    assert!(left.iter().all(|n| !n.contains(".gguf")), "output left behind: {left:?}");
}

// ---- a minimal safetensors rewriter for corrupting checkpoints ----
struct St {
    header: serde_json::Map<String, Value>,
    data: Vec<u8>,
}

fn read_st(p: &Path) -> St {
    let b = std::fs::read(p).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&b[8..8 + n]).unwrap();
    St { header, data: b[8 + n..].to_vec() }
}

impl St {
    fn tensor(&self, name: &str) -> (Vec<u64>, Vec<u8>) {
        let t = &self.header[name];
        let o: Vec<usize> = t["data_offsets"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let shape = t["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        (shape, self.data[o[0]..o[1]].to_vec())
    }
    /// Rewrites with `edit` applied to the (name, shape, bytes) list.
    fn rewrite(&self, p: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<u64>, Vec<u8>)>)) {
        let mut ts: Vec<(String, Vec<u64>, Vec<u8>)> = self
            .header
            .keys()
            .filter(|k| *k != "__metadata__")
            .map(|k| {
                let (s, d) = self.tensor(k);
                (k.clone(), s, d)
            })
            .collect();
        edit(&mut ts);
        let mut h = serde_json::Map::new();
        let mut data = Vec::new();
        for (k, s, d) in &ts {
            h.insert(k.clone(), serde_json::json!({"dtype": "BF16", "shape": s, "data_offsets": [data.len(), data.len() + d.len()]}));
            data.extend_from_slice(d);
        }
        let hj = serde_json::to_vec(&Value::Object(h)).unwrap();
        let mut out = (hj.len() as u64).to_le_bytes().to_vec();
        out.extend(hj);
        out.extend(data);
        std::fs::write(p, out).unwrap();
    }
}

fn out_of(d: &Path) -> (PathBuf, String) {
    let o = d.join("out");
    std::fs::create_dir_all(&o).unwrap();
    let f = o.join("m.gguf").display().to_string();
    (o, f)
}

#[test]
fn converts_single_and_sharded_bf16_at_every_type() {
    for shards in [1, 3] {
        let ck = base(shards);
        let (od, _) = out_of(&tmp(&format!("types{shards}")));
        for flag in ["--f32", "--f16", "--bf16", "--q8_0", "--q6_k", "--q5_k", "--q4_k", "--q4_0"] {
            let out = od.join(format!("m{flag}.gguf"));
            let o = run(&[ck.to_str().unwrap(), "-o", out.to_str().unwrap(), flag]);
            assert!(o.status.success(), "{flag} shards={shards}: {}", stderr(&o));
            assert!(out.exists() && od.join(format!("m{flag}.mmproj.gguf")).exists());
            // what sail checks before loading accepts every preset's output
            let f = sail_format::gguf::GgufFile::open(&out).unwrap();
            sail_format::validate::language(&f).unwrap_or_else(|e| panic!("{flag}: {e}"));
            let v = sail_format::gguf::GgufFile::open(&od.join(format!("m{flag}.mmproj.gguf"))).unwrap();
            sail_format::validate::vision(&v).unwrap_or_else(|e| panic!("{flag}: {e}"));
            let e = stderr(&o);
            assert!(e.contains("tensors in"), "no summary: {e}");
            if flag.starts_with("--q") && flag != "--q8_0" && flag != "--q4_0" {
                // tiny rows of 64 cannot hold 256-value K blocks: the summary names the fallback
                assert!(e.contains("fell back"), "{flag}: {e}");
            }
        }
        let left: Vec<_> = std::fs::read_dir(&od).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().contains("partial")), "{left:?}");
    }
}

#[test]
fn missing_config() {
    let d = tmp("noconfig");
    let (od, out) = out_of(&d);
    let o = run(&[d.to_str().unwrap(), "-o", &out]);
    assert_fails(&o, &["no config.json"], &od);
}

#[test]
fn missing_shard() {
    let d = copy_of(3, "noshard");
    std::fs::remove_file(d.join("model-00002-of-00003.safetensors")).unwrap();
    let (od, out) = out_of(&d);
    assert_fails(&run(&[d.to_str().unwrap(), "-o", &out]), &["missing shard", "model-00002-of-00003.safetensors"], &od);
}

fn edit_config(d: &Path, f: impl FnOnce(&mut Value)) {
    let p = d.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn unknown_model_type() {
    let d = copy_of(1, "modeltype");
    edit_config(&d, |v| v["model_type"] = "internvl_chat".into());
    let (od, out) = out_of(&d);
    assert_fails(&run(&[d.to_str().unwrap(), "-o", &out]), &["model_type", "internvl_chat", "sailvl"], &od);
}

#[test]
fn unknown_llm_architecture() {
    let d = copy_of(1, "llmarch");
    edit_config(&d, |v| v["llm_config"]["architectures"] = serde_json::json!(["LlamaForCausalLM"]));
    let (od, out) = out_of(&d);
    assert_fails(&run(&[d.to_str().unwrap(), "-o", &out]), &["LlamaForCausalLM", "not supported"], &od);
}

#[test]
fn missing_tensor() {
    let d = copy_of(1, "missingt");
    let p = d.join("model.safetensors");
    read_st(&p).rewrite(&p, |ts| ts.retain(|t| t.0 != "vision_model.trunk.blocks.1.mlp.fc3.weight"));
    let (od, out) = out_of(&d);
    assert_fails(
        &run(&[d.to_str().unwrap(), "-o", &out]),
        &["missing tensor vision_model.trunk.blocks.1.mlp.fc3.weight", "[128, 64]"],
        &od,
    );
}

#[test]
fn unexpected_tensor() {
    let d = copy_of(1, "extrat");
    let p = d.join("model.safetensors");
    read_st(&p).rewrite(&p, |ts| ts.push(("language_model.model.layers.0.self_attn.q_proj.bias".into(), vec![64], vec![0; 128])));
    let (od, out) = out_of(&d);
    assert_fails(&run(&[d.to_str().unwrap(), "-o", &out]), &["unexpected tensor language_model.model.layers.0.self_attn.q_proj.bias"], &od);
}

#[test]
fn misshaped_tensor() {
    let d = copy_of(1, "shape");
    let p = d.join("model.safetensors");
    read_st(&p).rewrite(&p, |ts| {
        let t = ts.iter_mut().find(|t| t.0 == "mlp1.1.weight").unwrap();
        t.1 = vec![128, 128]; // was [64, 256]: same byte count, wrong shape
    });
    let (od, out) = out_of(&d);
    assert_fails(&run(&[d.to_str().unwrap(), "-o", &out]), &["tensor mlp1.1.weight has shape [128, 128], expected [64, 256]"], &od);
}

#[test]
fn corrupt_safetensors_header() {
    let d = copy_of(1, "corrupt");
    let p = d.join("model.safetensors");
    let mut b = std::fs::read(&p).unwrap();
    b[8..16].copy_from_slice(b"\x00garbage"); // the header is no longer JSON
    std::fs::write(&p, &b).unwrap();
    let (od, out) = out_of(&d);
    assert_fails(&run(&[d.to_str().unwrap(), "-o", &out]), &["model.safetensors", "corrupt safetensors", "JSON"], &od);
    // and a truncated file
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    assert_fails(&run(&[d.to_str().unwrap(), "-o", &out]), &["model.safetensors", "corrupt safetensors"], &od);
}

#[test]
fn nan_and_inf_in_a_weight() {
    let d = copy_of(1, "nan");
    let p = d.join("model.safetensors");
    read_st(&p).rewrite(&p, |ts| {
        let t = ts.iter_mut().find(|t| t.0 == "language_model.model.layers.1.mlp.down_proj.weight").unwrap();
        t.2[0..2].copy_from_slice(&[0xC0, 0x7F]); // bf16 NaN
        t.2[2..4].copy_from_slice(&[0xC0, 0x7F]);
        t.2[10..12].copy_from_slice(&[0x80, 0x7F]); // bf16 +inf
    });
    let (od, out) = out_of(&d);
    assert_fails(
        &run(&[d.to_str().unwrap(), "-o", &out]),
        &["language_model.model.layers.1.mlp.down_proj.weight", "2 NaN and 1 infinite"],
        &od,
    );
}

#[test]
fn unwritable_output() {
    let d = tmp("unwritable");
    let blocker = d.join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let out = blocker.join("m.gguf");
    let o = run(&[base(1).to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_fails(&o, &["a-file"], &d);
}

/// A 2 MiB tmpfs in a private mount namespace (`unshare -rm`, so no root needed) fills up
/// halfway through the language file.
#[test]
fn disk_full() {
    let d = tmp("diskfull");
    let mnt = d.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs {m} || exit 99; {bin} {ck} -o {m}/m.gguf --quiet; rc=$?; echo LEFT:$(ls -A {m}); exit $rc",
        m = mnt.display(),
        bin = BIN,
        ck = base(1).display()
    );
    let o = Command::new("unshare").args(["-rm", "sh", "-c", &script]).output();
    let Ok(o) = o else {
        eprintln!("SKIPPED disk_full: unshare is not available");
        return;
    };
    if o.status.code() == Some(99) || o.status.code().is_none() {
        eprintln!("SKIPPED disk_full: cannot mount a tmpfs here: {}", stderr(&o));
        return;
    }
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("no space left"), "{e}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.trim_end().ends_with("LEFT:"), "files left on the full disk: {stdout}");
}

fn edit_json(p: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, serde_json::to_string(&v).unwrap()).unwrap();
}

/// Issue #11 item 4: an added token that repeats "!" converted with exit 0, and `sail run`
/// then aborted in llama.cpp's vocabulary loader.
#[test]
fn a_token_string_that_appears_twice_is_refused() {
    let d = copy_of(1, "duptoken");
    edit_json(&d.join("tokenizer.json"), |v| {
        let added = v["added_tokens"].as_array_mut().unwrap();
        let last = added.last_mut().unwrap();
        last["content"] = "!".into();
    });
    let (od, out) = out_of(&d);
    assert_fails(&run(&[d.to_str().unwrap(), "-o", &out]), &["tokenizer.json", "token \"!\" appears twice"], &od);
}

/// Issue #11 item 6: num_hidden_layers 10^6 used 5.5 GB and printed 1.1 GB of "missing
/// tensor" lines; vocab_size 10^9 aborted on a 24 GB allocation.
#[test]
fn absurd_counts_are_refused_before_they_size_anything() {
    for (name, key, sub, value) in [
        ("layers", "llm_config", "num_hidden_layers", 1_000_000u64),
        ("vlayers", "vision_config", "num_hidden_layers", 1_000_000),
        ("vocab", "llm_config", "vocab_size", 1_000_000_000),
    ] {
        let d = copy_of(1, name);
        edit_config(&d, |v| v[key][sub] = value.into());
        let (od, out) = out_of(&d);
        let t = std::time::Instant::now();
        let o = run(&[d.to_str().unwrap(), "-o", &out]);
        assert_fails(&o, &[&format!("{key}.{sub}"), &value.to_string()], &od);
        assert!(stderr(&o).len() < 4096, "{name}: {} bytes of stderr", stderr(&o).len());
        assert!(t.elapsed().as_secs() < 30, "{name}: {:?}", t.elapsed());
    }
    // a layout with very many problems is listed briefly
    let d = copy_of(1, "manyextra");
    let p = d.join("model.safetensors");
    read_st(&p).rewrite(&p, |ts| {
        for i in 0..5000 {
            ts.push((format!("extra.{i}.weight"), vec![1], vec![0; 2]));
        }
    });
    let (od, out) = out_of(&d);
    let o = run(&[d.to_str().unwrap(), "-o", &out]);
    assert_fails(&o, &["unexpected tensor extra.", "and 4988 more"], &od);
    assert!(stderr(&o).len() < 4096, "{} bytes of stderr", stderr(&o).len());
}

/// Issue #11 item 8: outputs go through a temporary name and a rename, which replaced a device
/// or FIFO given as -o with a regular file, and `-o <ckpt>/model.safetensors` overwrote the
/// input.
#[test]
fn outputs_never_replace_devices_fifos_or_inputs() {
    let ck = copy_of(1, "outputs");
    let od = tmp("outputs-out");
    let fifo = od.join("m.gguf");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let o = run(&[ck.to_str().unwrap(), "-o", fifo.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("a FIFO"), "{}", stderr(&o));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&std::fs::metadata(&fifo).unwrap().file_type()));
    // the vision file's name is checked too
    let fifo2 = od.join("n.mmproj.gguf");
    assert!(Command::new("mkfifo").arg(&fifo2).status().unwrap().success());
    let o = run(&[ck.to_str().unwrap(), "-o", od.join("n.gguf").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("n.mmproj.gguf"), "{}", stderr(&o));
    assert!(!od.join("n.gguf").exists());
    // a character device of this test's own, where the sandbox lets us make one
    let dev = od.join("full");
    if Command::new("mknod").arg(&dev).args(["c", "1", "7"]).status().is_ok_and(|s| s.success()) {
        let o = run(&[ck.to_str().unwrap(), "-o", dev.to_str().unwrap()]);
        assert!(!o.status.success() && stderr(&o).contains("a character device"), "{}", stderr(&o));
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(&std::fs::metadata(&dev).unwrap().file_type()));
    }
    // an input as the output: refused, the input untouched
    for input in ["model.safetensors", "config.json", "tokenizer.json"] {
        let p = ck.join(input);
        let before = std::fs::read(&p).unwrap();
        let o = run(&[ck.to_str().unwrap(), "-o", p.to_str().unwrap()]);
        assert!(!o.status.success() && stderr(&o).contains("is the input"), "{input}: {}", stderr(&o));
        assert!(std::fs::read(&p).unwrap() == before, "{input} changed");
    }
}

/// Inputs that are FIFOs are refused without blocking.
#[test]
fn a_fifo_in_the_checkpoint_is_refused() {
    let d = copy_of(1, "fifoin");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    assert!(Command::new("mkfifo").arg(d.join("tokenizer.json")).status().unwrap().success());
    let (od, out) = out_of(&d);
    let mut child =
        Command::new(BIN).args([d.to_str().unwrap(), "-o", &out, "--quiet"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed().as_secs() > 30 {
            let _ = child.kill();
            panic!("sail-convert blocked on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_fails(&child.wait_with_output().unwrap(), &["tokenizer.json", "a FIFO"], &od);
}
