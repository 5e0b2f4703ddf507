//! `sail`: the on-device command line, a thin layer over the `sail` library (run, chat, bench,
//! info). Flags and `--json` keys follow the contract in the README; each subcommand lives in
//! its own module.

use clap::{Parser, Subcommand};
use std::sync::atomic::{AtomicBool, Ordering};

mod args;
mod bench;
mod chat;
mod info;
mod rpc;
mod run;
mod serve;

use chat::ChatArgs;
use run::RunArgs;

/// Run SAIL-VL2 vision-language models on this machine.
#[derive(Debug, Parser)]
#[command(
    name = "sail",
    version,
    after_help = "Convert a Hugging Face checkpoint first:\n  sail-convert ./SAIL-VL2-2B -o sail-2b.gguf --q4_k\nthen:\n  sail run -m sail-2b.gguf --image photo.jpg -p \"Describe this image.\""
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Answer one prompt (with images or video frames), streaming the answer to stdout.
    Run(RunArgs),
    /// Interactive multi-turn chat; `/image PATH` attaches an image to the next question.
    Chat(ChatArgs),
    /// Measure load time, vision ms/tile, prefill and decode speed and peak memory.
    Bench(bench::BenchArgs),
    /// Describe a sail GGUF file (architecture, hyperparameters, tensor types, sizes).
    Info(info::InfoArgs),
    /// Serve the model over HTTP with OpenAI's chat completions API (127.0.0.1:8080 by default).
    Serve(serve::ServeArgs),
    /// Serve this machine's devices to `sail --rpc` clients (ggml's RPC protocol: no
    /// authentication, no encryption; loopback unless --host says otherwise).
    RpcServer(rpc::RpcServerArgs),
}

pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

/// A reader that closes the pipe early (`sail info FILE | head -3`) is not an error of ours.
/// Rust ignores SIGPIPE, so the print macros panic on EPIPE; end instead with the status a shell
/// reports for a process stopped by SIGPIPE (128 + 13), without a panic message.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p.downcast_ref::<String>().map(String::as_str).or_else(|| p.downcast_ref::<&str>().copied()).unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}

fn main() -> std::process::ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    // The RPC server keeps SIGINT's default action: it stops at once, mid-request or not.
    if !matches!(cli.cmd, Cmd::RpcServer(_)) {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let r = match cli.cmd {
        Cmd::Run(a) => run::run(a),
        Cmd::Chat(a) => chat::chat(a),
        Cmd::Bench(a) => bench::bench(a),
        Cmd::Info(a) => info::info(a),
        Cmd::Serve(a) => serve::serve(a),
        Cmd::RpcServer(a) => rpc::rpc_server(a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sail: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
