//! `sail serve` end to end: each test starts the server on a free loopback port with a tiny
//! random model (golden case small-dense, f32), waits for `/health`, drives it with the official
//! `openai` Python client (tests/python/serve_*.py) and stops it. The Python scripts hold the
//! checks; here: the server's life (it must still be running, and must never have panicked).

use sail_format::quant::{Preset, VisionType};
use sail_testkit::{checkpoint, converted, golden::Case};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const SAIL: &str = env!("CARGO_BIN_EXE_sail");
const KEY: &str = "test-key-3f1c";

fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python").join(name)
}

fn tiny_model() -> (PathBuf, PathBuf) {
    let c = Case::load("small-dense").unwrap();
    let argv = c.generator_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    (converted(&checkpoint(&argv), "small-dense", Preset::F32, VisionType::F32), c.image().unwrap())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sail-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running `sail serve`, killed on drop.
struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(model: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(SAIL)
            .args(["serve", "-m", model.to_str().unwrap(), "--port", "0", "-t", "2"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sail serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no address printed: {}", log.lock().unwrap()));
        let mut s = Server { child, url: format!("http://{addr}"), log };
        s.wait_ready(&addr);
        s
    }

    /// Polls GET /health until it says ready (a bare HTTP/1.0 request: the test needs no client).
    fn wait_ready(&mut self, addr: &str) {
        let t = Instant::now();
        loop {
            let mut reply = String::new();
            if let Ok(mut c) = std::net::TcpStream::connect(addr) {
                let _ = c.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let _ = c.read_to_string(&mut reply);
            }
            if reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200") {
                assert!(reply.contains("\"ready\""), "{reply}");
                return;
            }
            assert!(self.alive(), "sail serve exited: {}", self.log());
            assert!(t.elapsed() < Duration::from_secs(120), "not ready after 120 s: {reply}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Runs a Python script against the server; returns its stdout, panicking with both logs if
    /// it failed, the server died or the server panicked.
    fn python(&mut self, script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let t = Instant::now();
        let o = Command::new("python3")
            .arg(python_script(script))
            .args(args)
            .env("SAIL_URL", &self.url)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
        eprintln!("{script}: {:.1} s\n{err}", t.elapsed().as_secs_f64());
        assert!(o.status.success(), "{script} failed:\n{out}\n{err}\n--- server log ---\n{}", self.log());
        assert!(self.alive(), "sail serve died:\n{}", self.log());
        assert!(!self.log().contains("panicked"), "sail serve panicked:\n{}", self.log());
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn openai_client_chats_streams_and_gets_openai_errors() {
    let (model, image) = tiny_model();
    let files = tmp("files");
    let inside = files.join("picture.png");
    std::fs::copy(&image, &inside).unwrap();
    let outside = tmp("outside").join("secret.png");
    std::fs::copy(&image, &outside).unwrap();
    let mut s = Server::start(
        &model,
        &[
            "--api-key",
            KEY,
            "--parallel",
            "2",
            "--ctx",
            "1024",
            "--max-tokens",
            "2000",
            "--max-body-mb",
            "1",
            "--allow-local-files",
            files.to_str().unwrap(),
        ],
    );
    let inside = inside.canonicalize().unwrap();
    s.python(
        "serve_client.py",
        &[],
        &[
            ("SAIL_KEY", KEY),
            ("SAIL_BIN", SAIL),
            ("SAIL_MODEL", model.to_str().unwrap()),
            ("SAIL_IMAGE", inside.to_str().unwrap()),
            ("SAIL_OUTSIDE", outside.to_str().unwrap()),
            ("SAIL_MAX_BODY", &(1 << 20).to_string()),
        ],
    );
}

/// 8 concurrent clients x 25 requests, text and images, streamed and not: no failure, no crash,
/// and memory flat once every session has its cache.
#[test]
fn load_8_clients_x_25_requests() {
    let (model, image) = tiny_model();
    let mut s = Server::start(&model, &["--parallel", "2", "--queue", "16", "--ctx", "512"]);
    let pid = s.child.id().to_string();
    let out = s.python("serve_load.py", &["--url", &s.url.clone(), "--image", image.to_str().unwrap(), "--pid", &pid], &[]);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("load summary is not JSON ({e}): {out}"));
    eprintln!("load: {v}");
    assert_eq!(v["requests"], 200, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert!(v["rss_drift"].as_f64().unwrap().abs() < 0.05, "RSS drifted: {v}");
}

#[test]
fn busy_server_refuses_with_503_and_times_out() {
    let (model, _) = tiny_model();
    let mut s = Server::start(&model, &["--parallel", "1", "--queue", "0", "--timeout", "3", "--ctx", "1024"]);
    s.python("serve_limits.py", &[], &[]);
}

#[test]
fn network_host_without_key_warns_loudly() {
    let (model, _) = tiny_model();
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: binding fails after the warning,
    // and no packet is sent anywhere
    let o = Command::new(SAIL).args(["serve", "-m", model.to_str().unwrap(), "--host", "192.0.2.1", "--port", "0"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("WARNING") && e.contains("ANYONE WHO CAN REACH THIS MACHINE") && e.contains("--api-key"), "{e}");
    assert!(e.contains("cannot listen on 192.0.2.1:0"), "{e}");
    let o = Command::new(SAIL)
        .args(["serve", "-m", model.to_str().unwrap(), "--host", "192.0.2.1", "--port", "0", "--api-key", "k"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("WARNING"));
    // a missing model is refused before anything starts; a broken one ends the server with
    // the loader's error (after it listened: /health said "loading" meanwhile)
    let o = Command::new(SAIL).args(["serve", "-m", "/nonexistent.gguf"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no such model file"));
    let broken = tmp("broken").join("broken.gguf");
    std::fs::write(&broken, b"GGUF but not really").unwrap();
    let o = Command::new(SAIL).args(["serve", "-m", broken.to_str().unwrap(), "--port", "0"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("listening on") && e.contains("broken.gguf: ") && !e.contains("panicked"), "{e}");
}
