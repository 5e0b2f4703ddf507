//! CI's bounded fuzz runs: every target, `SAIL_FUZZ_SECONDS` seconds each (default 20), through
//! the `sail-fuzz` binary — a child process, so an abort or a signal in a target fails its test
//! by name instead of taking the test harness down. Long runs: scripts/fuzz.sh.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sail-fuzz");

fn smoke(target: &str) {
    let secs = std::env::var("SAIL_FUZZ_SECONDS").unwrap_or_else(|_| "20".into());
    let findings = std::env::temp_dir().join(format!("sail-fuzz-smoke-{}", std::process::id()));
    let o = Command::new(BIN).args(["run", target, "--seconds", &secs, "--seed", "11", "--findings"]).arg(&findings).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.signal(), None, "{target}: killed by a signal\n{out}{err}");
    assert!(o.status.success(), "{target}: findings\n{out}{err}");
    // "<target>: N iterations in … s (…/s), M reached the deepest step, 0 findings"
    let words: Vec<&str> = out.split_whitespace().collect();
    let n: u64 = words[1].parse().unwrap();
    let deep: u64 = words.iter().position(|w| *w == "reached").map(|i| words[i - 1].parse().unwrap()).unwrap();
    assert!(n > 100, "{target}: only {n} iterations");
    assert!(deep > 0, "{target}: no input got past the checks: {out}");
    println!("{out}");
}

#[test]
fn gguf() {
    smoke("gguf");
}

#[test]
fn hf_folder() {
    smoke("hf");
}

#[test]
fn image() {
    smoke("image");
}

#[test]
fn prompt() {
    smoke("prompt");
}

#[test]
fn vision_graph() {
    smoke("graph");
}

/// Every committed seed and every saved finding (`fuzz/regressions/TARGET/`) runs clean.
#[test]
fn seeds_and_regressions_replay_clean() {
    let root = sail_fuzz::package_dir();
    for t in sail_fuzz::all() {
        let mut seeds = 0;
        for (dir, is_corpus) in [(root.join("corpus").join(t.name), true), (root.join("regressions").join(t.name), false)] {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(_) if !is_corpus => continue, // no finding saved for this target
                Err(e) => panic!("{}: {e}", dir.display()),
            };
            for e in entries {
                let p = e.unwrap().path();
                (t.run)(&std::fs::read(&p).unwrap());
                seeds += is_corpus as usize;
            }
        }
        assert!(seeds > 0, "{}: no committed seeds", t.name);
    }
}

/// The GGUF seeds are real files every check accepts (so mutations start deep).
#[test]
fn gguf_seeds_are_valid_files() {
    let dir = sail_fuzz::package_dir().join("corpus/gguf");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let f = sail_format::gguf::GgufFile::open(&p).unwrap();
        sail_format::validate::any(&f).unwrap_or_else(|e| panic!("{e}"));
        n += 1;
    }
    assert!(n >= 3);
}
