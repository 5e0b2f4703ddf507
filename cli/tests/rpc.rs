//! ggml's RPC backend end to end: each test starts its own `sail rpc-server` processes on free
//! loopback ports (a server serves one client at a time, and tests run in parallel) and stops
//! them in `Drop`, so a failing assertion cannot leave one behind.
//!
//! Parity: `sail run --rpc` with every language layer remote, with the layers split across the
//! local CPU and two servers, and with the vision encoder remote, against the same run without
//! RPC, on the dense and the MoE tiny models at f32: logits NMSE ≤ 1e-6 and equal greedy tokens
//! (the servers compute on their CPU backend, so the results are in fact bit-identical). Each
//! remote run also proves it was remote: llama.cpp's placement log (`--verbose`) names the RPC
//! devices, and the servers' debug log (`GGML_RPC_DEBUG`) shows the graphs they computed.
//!
//! Failures: a server killed mid-generation, an unused port, a server of another protocol
//! version, bad endpoints and bad placement flags all end with a clear error naming the
//! endpoint or flag, and a non-zero exit status, in bounded time.

use sail_format::quant::{Preset, VisionType};
use sail_testkit::{checkpoint, converted, golden::Case, metrics, npy};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SAIL: &str = env!("CARGO_BIN_EXE_sail");

fn sail(args: &[&str]) -> Output {
    Command::new(SAIL).args(args).output().expect("run sail")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `sail rpc-server` child on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Server {
    fn start(tag: &str) -> Server {
        for attempt in 0..5 {
            let port = free_port();
            let log = sail_testkit::scratch().join(format!("rpc-server-{tag}-{port}-{}.log", std::process::id()));
            let f = std::fs::File::create(&log).unwrap();
            let child = Command::new(SAIL)
                .args(["rpc-server", "--port", &port.to_string(), "-t", "1"])
                .env("GGML_RPC_DEBUG", "1")
                .stdin(Stdio::null())
                .stdout(f.try_clone().unwrap())
                .stderr(f)
                .spawn()
                .expect("start sail rpc-server");
            let mut s = Server { child, endpoint: format!("127.0.0.1:{port}"), log };
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if s.child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return s;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!("rpc-server attempt {attempt} on port {port} did not come up: {}", s.log_text());
        }
        panic!("could not start sail rpc-server");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Graphs this server computed so far (ggml-rpc's debug log lines).
    fn graphs(&self) -> usize {
        self.log_text().lines().filter(|l| l.contains("[graph_compute]") || l.contains("[graph_recompute]")).count()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Model {
    case: Case,
    gguf: PathBuf,
}

fn model(name: &str) -> Model {
    let case = Case::load(name).unwrap();
    let argv = case.generator_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let gguf = converted(&checkpoint(&argv), name, Preset::F32, VisionType::F32);
    Model { case, gguf }
}

/// One `sail run` of the case's prompt and image: (json, stderr, logits, embeddings).
struct Run {
    json: Value,
    stderr: String,
    logits: Vec<f32>,
    embeddings: Vec<f32>,
}

fn run(m: &Model, label: &str, extra: &[&str]) -> Run {
    let dir = sail_testkit::scratch().join(format!("rpc-{}-{label}-{}", m.case.json["name"].as_str().unwrap(), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (lo, eo) = (dir.join("logits.npy"), dir.join("emb.npy"));
    let mut args = vec![
        "run",
        "-m",
        m.gguf.to_str().unwrap(),
        "-p",
        m.case.json["prompt"].as_str().unwrap(),
        "--temp",
        "0",
        "--ignore-eos",
        "-n",
        "8",
        "--json",
        "-t",
        "2",
        "--logits-out",
        lo.to_str().unwrap(),
        "--embeddings-out",
        eo.to_str().unwrap(),
    ];
    let img = m.case.image().unwrap();
    args.extend(["--image", img.to_str().unwrap()]);
    args.extend(extra);
    let o = sail(&args);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{label}: {stderr}");
    let json: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{label}: stdout is not JSON ({e})"));
    Run { json, stderr, logits: npy::read_f32(&lo).unwrap().data, embeddings: npy::read_f32(&eo).unwrap().data }
}

fn tokens(v: &Value) -> Vec<i64> {
    v["tokens"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

fn check_same(name: &str, label: &str, local: &Run, remote: &Run) {
    let nmse = metrics::nmse(&remote.logits, &local.logits);
    let emb = metrics::nmse(&remote.embeddings, &local.embeddings);
    eprintln!("{name} {label}: logits NMSE {nmse:.3e}, projector NMSE {emb:.3e}, tokens {:?}", tokens(&remote.json));
    assert!(nmse <= 1e-6, "{name} {label}: logits NMSE {nmse:.3e}");
    assert!(emb <= 1e-6, "{name} {label}: projector NMSE {emb:.3e}");
    assert_eq!(tokens(&remote.json), tokens(&local.json), "{name} {label}: greedy tokens");
    assert_eq!(remote.json["prompt_token_ids"], local.json["prompt_token_ids"]);
}

/// Every language layer remote, a split over CPU + two servers, and the vision encoder remote,
/// each against the local run. The tiny models have 2 layers; llama.cpp counts the output
/// layer as a third.
fn parity(name: &str) {
    let m = model(name);
    let (a, b) = (Server::start(&format!("{name}-a")), Server::start(&format!("{name}-b")));
    let both = format!("{},{}", a.endpoint, b.endpoint);

    let o = sail(&["info", "--devices", "--rpc", &both]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.contains(&format!("RPC0 (Remote) — {}", a.endpoint)) && out.contains(&format!("RPC1 (Remote) — {}", b.endpoint)), "{out}");

    let local = run(&m, "local", &[]);

    let g0 = a.graphs();
    let all = run(&m, "all-remote", &["--rpc", &a.endpoint, "--verbose"]);
    assert!(all.stderr.contains("offloaded 3/3 layers"), "{}", all.stderr);
    assert!(all.stderr.contains("layer   0 assigned to device RPC0") && all.stderr.contains("layer   2 assigned to device RPC0"));
    assert!(a.graphs() > g0, "server A computed nothing");
    check_same(name, "all layers on one server", &local, &all);

    let (ga, gb) = (a.graphs(), b.graphs());
    let split = run(&m, "split", &["--rpc", &both, "--gpu-layers", "2", "--tensor-split", "1,1", "--verbose"]);
    for want in ["layer   0 assigned to device CPU", "layer   1 assigned to device RPC0", "layer   2 assigned to device RPC1"] {
        assert!(split.stderr.contains(want), "{want}:\n{}", split.stderr);
    }
    assert!(a.graphs() > ga && b.graphs() > gb, "both servers must compute");
    check_same(name, "CPU + two servers", &local, &split);

    // control: registered but given nothing to do, the server computes nothing
    let g0 = a.graphs();
    let idle = run(&m, "idle-remote", &["--rpc", &a.endpoint, "--gpu-layers", "0", "--verbose"]);
    assert!(idle.stderr.contains("offloaded 0/3 layers"), "{}", idle.stderr);
    assert_eq!(a.graphs(), g0, "a server with no layers and no vision computed graphs");
    check_same(name, "server registered, unused", &local, &idle);

    let vision = run(&m, "vision-remote", &["--rpc", &a.endpoint, "--gpu-layers", "0", "--vision-device", "RPC0", "--verbose"]);
    assert!(vision.stderr.contains("offloaded 0/3 layers"), "{}", vision.stderr);
    // with no layer remote, what the server computed is the vision tower
    assert!(a.graphs() > g0, "the vision encoder did not run on the server");
    check_same(name, "vision encoder on a server", &local, &vision);
}

#[test]
fn dense_remote_runs_match_local() {
    parity("small-dense");
}

#[test]
fn moe_remote_runs_match_local() {
    parity("moe-portrait-sharded");
}

fn fails_within(args: &[&str], limit: Duration, needles: &[&str]) -> Duration {
    let t = Instant::now();
    let o = sail(args);
    let took = t.elapsed();
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "expected a clean failure: {args:?}\n{e}");
    assert!(!e.contains("panicked") && !e.contains("GGML_ASSERT"), "{e}");
    for n in needles {
        assert!(e.contains(n), "stderr lacks {n:?}:\n{e}");
    }
    assert!(took < limit, "{args:?} took {took:?}");
    took
}

#[test]
fn unreachable_and_incompatible_servers_are_refused_before_loading() {
    let m = model("small-dense");
    let g = m.gguf.to_str().unwrap();
    // nothing listens on a free port: refused at once
    let dead = format!("127.0.0.1:{}", free_port());
    let took = fails_within(&["run", "-m", g, "-p", "hi", "--rpc", &dead], Duration::from_secs(5), &[&dead, "cannot connect"]);
    eprintln!("unused port: clean error after {took:?}");
    // a server of another protocol version (a stand-in answering the hello with 6.0.0)
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let old = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    let fake = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = [0u8; 1 + 8 + 24];
        s.read_exact(&mut req).unwrap();
        assert_eq!(req[0], 14, "the hello command");
        let mut rsp = 28u64.to_ne_bytes().to_vec();
        rsp.extend([6, 0, 0, 0]);
        rsp.extend([0u8; 24]);
        s.write_all(&rsp).unwrap();
    });
    let took = fails_within(&["run", "-m", g, "-p", "hi", "--rpc", &old], Duration::from_secs(10), &[&old, "protocol 6.0.0", "7.0.0"]);
    eprintln!("protocol 6.0.0 server: clean error after {took:?}");
    fake.join().unwrap();
    // endpoints are checked before any connection
    for (bad, why) in [("127.0.0.1", "no port"), ("127.0.0.1:0", "1..=65535"), ("127.0.0.1:70000", "1..=65535"), ("[::1]:50052", "IPv6")] {
        let o = sail(&["run", "-m", g, "-p", "hi", "--rpc", &format!("{dead},{bad}")]);
        let e = text(&o.stderr);
        assert!(!o.status.success() && e.contains(bad) && e.contains(why) && !e.contains("cannot connect"), "{bad}: {e}");
    }
}

#[test]
fn placement_flags_are_checked() {
    let m = model("small-dense");
    let g = m.gguf.to_str().unwrap();
    let s = Server::start("flags");
    fails_within(
        &["run", "-m", g, "-p", "hi", "--rpc", &s.endpoint, "--tensor-split", "1,1"],
        Duration::from_secs(10),
        &["--tensor-split has 2 shares but there are 1 offload devices (RPC0)"],
    );
    fails_within(&["run", "-m", g, "-p", "hi", "--tensor-split", "1"], Duration::from_secs(10), &["--tensor-split", "none without --rpc"]);
    fails_within(
        &["run", "-m", g, "-p", "hi", "--rpc", &s.endpoint, "--vision-device", "RPC7"],
        Duration::from_secs(10),
        &["--vision-device RPC7: no such device", "CPU, RPC0"],
    );
    fails_within(&["run", "-m", g, "-p", "hi", "--vision-device", "RPC0"], Duration::from_secs(10), &["no such device", "with --rpc"]);
    for split in ["-1", "0", "nan"] {
        fails_within(
            &["run", "-m", g, "-p", "hi", "--rpc", &s.endpoint, "--tensor-split", split],
            Duration::from_secs(10),
            &["tensor split", "≥ 0"],
        );
    }
}

/// All layers over two servers, one killed while tokens stream: the run ends within 30 s with
/// exit status 1 and a message naming the killed server, and writes no output file.
#[test]
fn killed_server_mid_generation_gives_a_clean_error() {
    let m = model("small-dense");
    let a = Server::start("kill-a");
    let mut b = Server::start("kill-b");
    let dir = sail_testkit::scratch().join(format!("rpc-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lo = dir.join("logits.npy");
    let rpc = format!("{},{}", a.endpoint, b.endpoint);
    let mut child = Command::new(SAIL)
        .args(["run", "-m", m.gguf.to_str().unwrap(), "-p", "Tell a long story.", "--ignore-eos", "-n", "20000", "--ctx", "20480"])
        .args(["-t", "1", "--rpc", &rpc, "--tensor-split", "1,1", "--logits-out", lo.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait for streamed tokens: generation is under way
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let n = out.read(&mut first).unwrap();
    assert!(n > 0, "no tokens streamed");
    let drain = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    std::thread::sleep(Duration::from_millis(300));
    b.kill();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("sail still running 30 s after its RPC server was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t.elapsed();
    let _ = drain.join();
    let mut e = String::new();
    child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
    eprintln!("killed server: sail exited with {status} after {took:?}: {}", e.trim());
    assert_eq!(status.code(), Some(1), "{e}");
    assert!(e.contains(&format!("sail: error: lost the RPC server {}", b.endpoint)), "{e}");
    assert!(!e.contains(&a.endpoint), "the live server was blamed: {e}");
    assert!(!e.contains("panicked") && !e.contains("backtrace"), "{e}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "files written: {left:?}");
    drop(a);
}

#[test]
fn rpc_server_options() {
    // the port is taken: a clear error, after the warning for a non-loopback host
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let o = sail(&["rpc-server", "--host", "0.0.0.0", "--port", &port]);
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("WARNING") && e.contains("NO authentication") && e.contains("SSH tunnel"), "{e}");
    assert!(e.contains(&format!("cannot serve on 0.0.0.0:{port}")) && e.contains("in use"), "{e}");
    let o = sail(&["rpc-server", "--port", &port]);
    let e = text(&o.stderr);
    assert!(!o.status.success() && !e.contains("WARNING") && e.contains(&format!("127.0.0.1:{port}")), "{e}");
    drop(l);
    for (args, needle) in [(["--host", "localhost"], "IPv4"), (["--port", "0"], "--port")] {
        let o = sail(&[&["rpc-server"][..], &args[..]].concat());
        assert!(!o.status.success() && text(&o.stderr).contains(needle), "{}", text(&o.stderr));
    }
}
