//! `sail rpc-server`: lends this machine's devices to other `sail` processes through ggml's RPC
//! backend (the protocol of llama.cpp's `rpc-server`, so either end can be the other tool).
//!
//! The protocol has no authentication and no encryption: whoever reaches the port can run
//! graphs on the served devices and read or write their memory. Hence loopback by default, a
//! loud warning otherwise, and SSH tunnels / WireGuard in the README for remote boards.

use crate::args::{backend_devices, BackendArg};
use anyhow::{Context as _, Result};
use clap::Args;
use sail::ggml::rpc::{Endpoint, ServeParams};
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct RpcServerArgs {
    /// IPv4 address to listen on. Anything but loopback lets everyone who can reach the port
    /// use this machine's devices: the protocol has no authentication and no encryption.
    #[arg(long, default_value = "127.0.0.1")]
    host: Ipv4Addr,
    /// TCP port.
    #[arg(long, default_value_t = 50052, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// CPU threads for the served CPU device [default: all cores].
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Which devices to serve: the CPU, or every Vulkan / CUDA device of this build.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// Keep large weights here by hash, so a client that loads the same model again need not
    /// send them again (created if missing).
    #[arg(long = "cache-dir")]
    cache_dir: Option<PathBuf>,
}

pub(crate) fn rpc_server(a: RpcServerArgs) -> Result<()> {
    // ggml's own errors (a client of another protocol version, …) go to stderr
    sail::ggml::llama_init(true);
    let endpoint = Endpoint { host: a.host.to_string(), port: a.port };
    let devices = backend_devices(a.backend)?;
    let cache_dir = match &a.cache_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("--cache-dir {}: cannot create the folder", d.display()))?;
            Some(d.canonicalize().with_context(|| format!("--cache-dir {}", d.display()))?)
        }
        None => None,
    };
    if !a.host.is_loopback() {
        eprintln!(
            "sail rpc-server: WARNING: listening on {endpoint}, not on loopback. ggml's RPC protocol has NO authentication and \
             NO encryption: anyone who can reach this port can run code on these devices and read or overwrite their memory. \
             Expose it only inside a trusted network, or keep the default 127.0.0.1 and reach it through an SSH tunnel or \
             WireGuard (see the README)."
        );
    }
    let n_threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4));
    eprintln!("sail rpc-server: serving {} on {endpoint} (one client at a time; Ctrl-C stops)", devices.join(", "));
    let err = sail::ggml::rpc::serve(&ServeParams { endpoint, devices, n_threads, cache_dir }).unwrap_err();
    Err(err.into())
}
