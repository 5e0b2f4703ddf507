//! `sail-fuzz`: the in-process fuzz runner, its regression replay, and the seed generator.
//!
//!   sail-fuzz run TARGET [--seconds N] [--iterations N] [--seed S] [--findings DIR]
//!   sail-fuzz replay TARGET FILE...
//!   sail-fuzz seeds [DIR]        (default: the committed corpus folder)
//!   sail-fuzz list

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn usage() -> ExitCode {
    eprintln!("usage: sail-fuzz run TARGET [--seconds N] [--iterations N] [--seed S] [--findings DIR] | replay TARGET FILE... | seeds [DIR] | list");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { return usage() };
    match cmd.as_str() {
        "list" => {
            for t in sail_fuzz::all() {
                println!("{}", t.name);
            }
            ExitCode::SUCCESS
        }
        "seeds" => {
            let dir = args.get(1).map(PathBuf::from).unwrap_or_else(sail_fuzz::corpus_dir);
            match sail_fuzz::seeds::write_all(&dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sail-fuzz: {}: {e}", dir.display());
                    ExitCode::FAILURE
                }
            }
        }
        "replay" => {
            let Some(t) = args.get(1).and_then(|n| sail_fuzz::target(n)) else { return usage() };
            for f in &args[2..] {
                let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
                (t.run)(&data);
                println!("{f}: ok");
            }
            ExitCode::SUCCESS
        }
        "run" => {
            let Some(t) = args.get(1).and_then(|n| sail_fuzz::target(n)) else { return usage() };
            let mut seconds = 60u64;
            let mut iterations = u64::MAX;
            let mut seed = 1u64;
            let mut findings = std::env::temp_dir().join("sail-fuzz-findings");
            let mut it = args[2..].iter();
            while let Some(a) = it.next() {
                let v = it.next();
                let num = || v.and_then(|v| v.parse::<u64>().ok());
                match (a.as_str(), v) {
                    ("--seconds", _) if num().is_some() => seconds = num().unwrap_or(60),
                    ("--iterations", _) if num().is_some() => iterations = num().unwrap_or(u64::MAX),
                    ("--seed", _) if num().is_some() => seed = num().unwrap_or(1),
                    ("--findings", Some(d)) => findings = PathBuf::from(d),
                    _ => return usage(),
                }
            }
            let r = sail_fuzz::run(&t, Duration::from_secs(seconds), iterations, seed, &findings);
            println!(
                "{}: {} iterations in {:.1} s ({:.0}/s), {} reached the deepest step, {} findings",
                t.name,
                r.iterations,
                r.seconds,
                r.iterations as f64 / r.seconds.max(1e-9),
                r.deep,
                r.findings.len()
            );
            for f in &r.findings {
                println!("  finding: {} (replay: sail-fuzz replay {} {})", f.display(), t.name, f.display());
            }
            if r.findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => usage(),
    }
}
