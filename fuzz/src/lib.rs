//! Fuzzing every parser of untrusted input, on stable Rust.
//!
//! cargo-fuzz needs a nightly compiler; the same libFuzzer targets build on stable with the
//! sanitizer-coverage flags set by hand (`libfuzzer/`, `scripts/fuzz.sh`), for long
//! coverage-guided runs. Those builds use their own target folder and flags, so they must not
//! touch llama.cpp: the targets there are plain Rust (GGUF reader and validator, Hugging Face
//! folder readers, image decoder and tiler, prompt builder).
//!
//! This crate holds the targets themselves ([`targets`]) and a small in-process runner
//! ([`run`]): random structural and byte mutations of the committed seed corpora, bounded by
//! time, in the normal release build. CI runs it briefly for every target (including the
//! vision graph, which needs ggml and so only runs here); the same runner does long runs of
//! the graph target. A panic is a finding and the input is saved; an abort or a signal ends
//! the process, which fails the run by itself.

pub mod seeds;
pub mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A fuzz target: a name (also its corpus folder) and the function under test.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// Structure-aware mutation for GGUF inputs.
    pub gguf_aware: bool,
}

/// Every target this build has.
pub fn all() -> Vec<Target> {
    let plain = [
        Target { name: "gguf", run: targets::gguf, gguf_aware: true },
        Target { name: "hf", run: targets::hf_folder, gguf_aware: false },
        Target { name: "image", run: targets::image, gguf_aware: false },
        Target { name: "prompt", run: targets::prompt, gguf_aware: false },
    ];
    #[cfg(feature = "engine")]
    let engine = [Target { name: "graph", run: targets::vision_graph, gguf_aware: false }];
    #[cfg(not(feature = "engine"))]
    let engine: [Target; 0] = [];
    plain.into_iter().chain(engine).collect()
}

pub fn target(name: &str) -> Option<Target> {
    all().into_iter().find(|t| t.name == name)
}

/// The committed seed corpora.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// The seeds of `target` (every file of its corpus folder), sorted by name.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(target))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// xorshift64*: deterministic, seedable, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Values that break sizes, counts and signs.
pub const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    16,
    31,
    32,
    63,
    64,
    127,
    128,
    255,
    256,
    512,
    1023,
    1024,
    4096,
    65535,
    65536,
    1 << 20,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX,
];

/// One to eight byte-level mutations: bit flips, interesting integers of 1/2/4/8 bytes, inserted,
/// deleted and duplicated runs, truncation, and splices with another seed.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(8) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next_u64() as u8;
            }
            2 if len >= 8 => {
                let w = [1usize, 2, 4, 8][rng.below(4)];
                let i = rng.below(len - w + 1);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let v = if rng.below(2) == 0 { v } else { v.wrapping_neg() };
                data[i..i + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(i..i, bytes);
            }
            4 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                data.drain(i..i + n);
            }
            5 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let chunk = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            6 if len > 1 => data.truncate(rng.below(len)),
            7 if !other.is_empty() && len > 0 => {
                let a = rng.below(len);
                let b = rng.below(other.len());
                let n = 1 + rng.below((other.len() - b).min(512));
                data.splice(a..(a + n).min(len), other[b..b + n].iter().copied());
            }
            _ => {}
        }
    }
}

/// A mutation that keeps a GGUF file well-formed and changes one value the way an attacker
/// would: a count, a type, an offset, a dimension, a key, an epsilon, the alignment, or a
/// token string.
pub fn mutate_gguf(rng: &mut Rng, data: &[u8]) -> Option<Vec<u8>> {
    use sail_format::fixture::Edit;
    use sail_format::gguf::{GgufFile, Value};
    let f = GgufFile::from_bytes(Path::new("seed.gguf"), data).ok()?;
    let mut e = Edit {
        kvs: f.kvs.clone(),
        tensors: f
            .tensors
            .iter()
            .map(|t| sail_format::gguf::RawTensor { name: t.name.clone(), ne: t.ne.clone(), type_id: t.type_id, offset: t.rel_offset })
            .collect(),
        data: f.bytes()[f.data_offset..].to_vec(),
        alignment: f.alignment,
    };
    let big = |rng: &mut Rng| INTERESTING[rng.below(INTERESTING.len())];
    match rng.below(7) {
        0 | 1 if !e.kvs.is_empty() => {
            let i = rng.below(e.kvs.len());
            let new = match &mut e.kvs[i].1 {
                Value::U32(_) => Value::U32(big(rng) as u32),
                Value::I32(_) => Value::I32(big(rng) as i32),
                Value::U64(_) => Value::U64(big(rng)),
                Value::F32(_) => Value::F32([0.0, -1.0, f32::NAN, f32::INFINITY, 1e30, 1e-30, 0.5][rng.below(7)]),
                Value::Bool(b) => Value::Bool(!*b),
                Value::String(_) => Value::String(["", "qwen3", "qwen3moe", "clip", "../x", "gpt2", "llama", "v1"][rng.below(8)].into()),
                Value::ArrString(a) if a.len() > 1 => {
                    let (x, y) = (rng.below(a.len()), rng.below(a.len()));
                    a[x] = if rng.below(3) == 0 { String::new() } else { a[y].clone() };
                    return Some(write(&e));
                }
                Value::ArrI32(a) if !a.is_empty() => {
                    let x = rng.below(a.len());
                    a[x] = big(rng) as i32;
                    return Some(write(&e));
                }
                Value::ArrF32(a) if !a.is_empty() => {
                    let x = rng.below(a.len());
                    a[x] = f32::NAN;
                    return Some(write(&e));
                }
                // another type altogether: llama.cpp reads keys by exact type
                _ => Value::I64(big(rng) as i64),
            };
            e.kvs[i].1 = new;
        }
        2 if !e.tensors.is_empty() => {
            let i = rng.below(e.tensors.len());
            e.tensors[i].type_id = [0u32, 1, 2, 8, 12, 14, 30, 4, 99, 1 << 31][rng.below(10)];
        }
        3 if !e.tensors.is_empty() => {
            let i = rng.below(e.tensors.len());
            let t = &mut e.tensors[i];
            t.offset = match rng.below(3) {
                0 => t.offset.wrapping_add(16),
                1 => 0,
                _ => big(rng),
            };
        }
        4 if !e.tensors.is_empty() => {
            let i = rng.below(e.tensors.len());
            let t = &mut e.tensors[i];
            let d = rng.below(t.ne.len());
            t.ne[d] = [0u64, 1, t.ne[d] * 2, t.ne[d] / 2, big(rng)][rng.below(5)];
        }
        5 => {
            let key = sail_format::keys::GENERAL_ALIGNMENT.to_string();
            let a = [8u32, 16, 64, 0, 3, 1 << 20][rng.below(6)];
            e.kvs.retain(|(k, _)| *k != key);
            e.kvs.push((key, Value::U32(a)));
            if a.is_power_of_two() {
                e.alignment = a as usize;
            }
        }
        _ if !e.kvs.is_empty() => {
            // drop or duplicate a key, or rename a tensor
            let i = rng.below(e.kvs.len());
            match rng.below(3) {
                0 => drop(e.kvs.remove(i)),
                1 => e.kvs.push(e.kvs[i].clone()),
                _ if !e.tensors.is_empty() => {
                    let t = rng.below(e.tensors.len());
                    e.tensors[t].name.push('x');
                }
                _ => {}
            }
        }
        _ => {}
    }
    Some(write(&e))
}

fn write(e: &sail_format::fixture::Edit) -> Vec<u8> {
    let mut out = Vec::new();
    sail_format::gguf::write_raw(&mut out, &e.kvs, &e.tensors, &e.data, e.alignment).expect("writing to memory");
    out
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub iterations: u64,
    /// Iterations that reached the target's deepest step (see [`targets::DEEP`]).
    pub deep: u64,
    pub findings: Vec<PathBuf>,
    pub seconds: f64,
}

/// Runs `t` on mutations of its seeds until `duration` has passed (or `max_iterations`). A
/// panic is a finding: its input is written to `findings` (created on demand) and the run
/// goes on. Seeds run first, unmutated.
pub fn run(t: &Target, duration: Duration, max_iterations: u64, seed: u64, findings: &Path) -> Report {
    let seeds = seeds(t.name);
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let start = Instant::now();
    let quiet = std::panic::take_hook();
    // panics are reported below, with their input; the default hook would print each one
    std::panic::set_hook(Box::new(|_| {}));
    let deep0 = targets::DEEP.load(std::sync::atomic::Ordering::Relaxed);
    let mut i = 0u64;
    while start.elapsed() < duration && i < max_iterations {
        let input = if (i as usize) < seeds.len() {
            seeds[i as usize].clone()
        } else if seeds.is_empty() {
            (0..rng.below(256)).map(|_| rng.next_u64() as u8).collect()
        } else {
            let base = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            let structural = if t.gguf_aware && rng.below(2) == 0 { mutate_gguf(&mut rng, base) } else { None };
            let mut d = structural.unwrap_or_else(|| base.clone());
            if d == *base || rng.below(4) == 0 {
                mutate_bytes(&mut rng, &mut d, other);
            }
            d
        };
        let f = t.run;
        if std::panic::catch_unwind(|| f(&input)).is_err() {
            let _ = std::fs::create_dir_all(findings);
            let name = format!("{}-{:016x}", t.name, fnv(&input));
            let p = findings.join(name);
            let _ = std::fs::write(&p, &input);
            report.findings.push(p);
        }
        i += 1;
    }
    std::panic::set_hook(quiet);
    report.iterations = i;
    report.deep = targets::DEEP.load(std::sync::atomic::Ordering::Relaxed) - deep0;
    report.seconds = start.elapsed().as_secs_f64();
    report
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100000001b3))
}
