//! The C examples, compiled with the system `cc` against include/ and the built archive using
//! the link lines README.md documents, run on the tiny dense model: their streamed tokens must
//! equal the library's (and the `sail` CLI's, when that binary is built) for the same model,
//! image, prompt and greedy `-n 8 --ignore-eos`.

mod common;

use common::*;
use std::process::Command;

const N: usize = 8;

fn check_cli(f: &Fixture, prompt: &str, want: &[i32]) {
    let Some(cli) = sail_cli() else {
        eprintln!("the sail CLI is not built next to this test; compared with the library only");
        return;
    };
    let n = N.to_string();
    let o = run(
        &cli,
        &[
            "run",
            "-m",
            f.gguf.to_str().unwrap(),
            "--image",
            f.image.to_str().unwrap(),
            "-p",
            prompt,
            "--temp",
            "0",
            "--ignore-eos",
            "-n",
            &n,
            "--json",
        ],
    );
    assert!(o.status.success(), "{}: {}", cli.display(), text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got: Vec<i32> = v["tokens"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect();
    assert_eq!(got, want, "the library's tokens differ from {} (rebuild it: cargo build --release -p sail-runtime)", cli.display());
    eprintln!("{} agrees: {got:?}", cli.display());
}

#[test]
fn describe_streams_the_same_tokens_as_the_library_and_cli() {
    let f = small_dense();
    let prompt = f.prompt();
    let (want, want_text) = library_tokens(&f.gguf, &f.image, &prompt, N);
    assert_eq!(want.len(), N);
    check_cli(&f, &prompt, &want);

    let exe = build_static(&example("describe.c"), &tmp("describe").join("describe"));
    let n = N.to_string();
    let o = run(&exe, &[f.gguf.to_str().unwrap(), f.image.to_str().unwrap(), &prompt, &n, "--ignore-eos"]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "describe failed:\n{out}\n{err}");
    let got = ids_after(&err, "ids:");
    eprintln!("describe.c: {got:?}\nlibrary:    {want:?}");
    assert_eq!(got, want, "describe.c's streamed tokens");
    assert_eq!(out, format!("{want_text}\n[{N} tokens]\n"), "describe.c's streamed text and count");
}

#[test]
fn two_threads_on_one_model_match_single_threaded_runs() {
    let f = small_dense();
    // different images (7 tiles each, other pixels) and prompts: crossed wires would show
    let other = tmp("two").join("other-300x420.png");
    sail_gen::image::write_png(&other, 300, 420, 5).unwrap();
    let jobs = [(f.image.clone(), f.prompt()), (other, "1 2 3 4 5 6 7 8 9".to_string())];
    let want: Vec<Vec<i32>> = jobs.iter().map(|(img, p)| library_tokens(&f.gguf, img, p, N).0).collect();
    assert_ne!(want[0], want[1], "the two jobs should answer differently");

    let exe = build_static(&example("two_threads.c"), &tmp("two").join("two_threads"));
    let n = N.to_string();
    let mut args = vec![f.gguf.to_str().unwrap(), &n];
    for (img, p) in &jobs {
        args.extend([img.to_str().unwrap(), p.as_str()]);
    }
    // several rounds: the two sessions' vision and decoding overlap differently each time
    for round in 0..3 {
        let o = run(&exe, &args);
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        assert!(o.status.success(), "two_threads failed:\n{out}\n{err}");
        for (i, w) in want.iter().enumerate() {
            let got = ids_after(&out, &format!("thread {i}:"));
            assert_eq!(&got, w, "round {round}, thread {i}");
        }
        eprint!("round {round}:\n{out}");
    }
    eprintln!("single-threaded: {want:?}");
}

#[test]
fn misuse_from_c_gets_status_codes() {
    let f = small_dense();
    let d = tmp("misuse");
    let not_gguf = d.join("notes.txt");
    std::fs::write(&not_gguf, "this is neither a GGUF file nor an image\n").unwrap();
    let exe = build_static(&example("misuse.c"), &d.join("misuse"));
    let o = run(&exe, &[f.gguf.to_str().unwrap(), f.image.to_str().unwrap(), not_gguf.to_str().unwrap()]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "misuse.c:\n{out}\n{err}");
    assert!(out.contains("all") && out.contains("checks passed"), "{out}");
    assert!(!err.contains("panicked"), "{err}");
    eprintln!("{out}");
}

/// README's fully static line (libstdc++, libgcc and libgomp inside the program).
#[test]
fn fully_static_link_line_links_and_runs() {
    let f = small_dense();
    let lib = install_dir().join("libsail.a");
    let out = tmp("static").join("describe-static");
    let mut c = Command::new("g++");
    c.args(["-O2", "-x", "c"])
        .arg(example("describe.c"))
        .arg("-I")
        .arg(include_dir())
        .args(["-x", "none"])
        .arg(&lib)
        .args(STATIC_LINK_FLAGS)
        .args(backend_link_libs())
        .arg("-o")
        .arg(&out);
    compile(c);
    let ldd = Command::new("ldd").arg(&out).output().unwrap();
    let deps = text(&ldd.stdout);
    for gone in ["libstdc++", "libgcc_s", "libgomp"] {
        assert!(!deps.contains(gone), "{gone} is still a dynamic dependency:\n{deps}");
    }
    let o = run(&out, &[f.gguf.to_str().unwrap(), f.image.to_str().unwrap(), "Describe.", "2", "--ignore-eos"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(ids_after(&text(&o.stderr), "ids:").len(), 2);
    eprintln!("fully static describe: ldd:\n{deps}");
}

/// The shared library: `cc app.c -I include -L DIR -lsail`, found at run time via rpath.
#[test]
fn shared_library_links_and_runs() {
    let f = small_dense();
    let dir = install_dir();
    let so = dir.join("libsail.so");
    let out = tmp("shared").join("describe-shared");
    let mut c = Command::new(cc());
    c.args(["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"]).arg(example("describe.c")).arg("-I").arg(include_dir());
    c.arg("-L").arg(&dir).arg("-lsail").arg(format!("-Wl,-rpath,{}", dir.display())).arg("-o").arg(&out);
    compile(c);
    let needed = text(&Command::new("readelf").args(["-d"]).arg(&out).output().unwrap().stdout);
    assert!(needed.contains("[libsail.so]"), "the program should need libsail.so (its SONAME):\n{needed}");
    let exports = text(&Command::new("nm").args(["-D", "--defined-only"]).arg(&so).output().unwrap().stdout);
    assert!(!exports.contains(" T llama_") && !exports.contains(" T ggml_"), "libsail.so should export only sail_* functions");
    let o = run(&out, &[f.gguf.to_str().unwrap(), f.image.to_str().unwrap(), "Describe.", "2", "--ignore-eos"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(ids_after(&text(&o.stderr), "ids:").len(), 2);
}
