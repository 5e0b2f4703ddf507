//! `sail serve`: flags in, the server library (sail-server) does the rest.

use crate::args::ModelArgs;
use crate::STOP;
use anyhow::{bail, Context as _, Result};
use clap::Args;
use sail_server::{Config, Limits, Loaded};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    after_help = "Endpoints: POST /v1/chat/completions (OpenAI's format, streaming too), GET /v1/models, GET /health, GET /metrics.\n\
Images come as data: URIs (base64) or, with --allow-local-files, file:// URLs; remote URLs are refused."
)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on. Anything but a loopback address exposes the model to the network:
    /// use --api-key then.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Sessions, i.e. generations at once; each gets --threads / N threads and its own KV cache
    /// of --ctx positions.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Requests that may wait for a session; more are refused with 503.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health.
    #[arg(long = "api-key")]
    api_key: Option<String>,
    /// Read the API key from this file (first line), so it does not show in the process list.
    #[arg(long = "api-key-file", conflicts_with = "api_key")]
    api_key_file: Option<PathBuf>,
    /// Let requests name images as file:// URLs inside this folder (and nowhere else).
    #[arg(long = "allow-local-files")]
    allow_local_files: Option<PathBuf>,
    /// KV cache positions per session: prompt (image tokens included) plus max_tokens must fit.
    #[arg(long = "ctx", default_value_t = 4096)]
    ctx: u32,
    /// Largest max_tokens a request may ask for, and the default.
    #[arg(long = "max-tokens", default_value_t = 1024)]
    max_tokens: usize,
    /// Images per request (the whole conversation).
    #[arg(long = "max-images", default_value_t = 8)]
    max_images: usize,
    /// Largest request body, in MiB (base64 images included).
    #[arg(long = "max-body-mb", default_value_t = 32)]
    max_body_mb: usize,
    /// Seconds a request may take from arrival to its last token, queueing included.
    #[arg(long = "timeout", default_value_t = 600)]
    timeout: u64,
    /// Ask for reasoning by default (Thinking variants); a request's "think" overrides it.
    #[arg(long)]
    think: bool,
    /// System prompt for requests without one [default: the model's].
    #[arg(long)]
    system: Option<String>,
    /// The model's name in /v1/models and in responses [default: the file name without .gguf].
    #[arg(long = "model-name")]
    model_name: Option<String>,
}

pub(crate) fn serve(a: ServeArgs) -> Result<()> {
    if a.parallel == 0 || a.max_tokens == 0 || a.max_body_mb == 0 || a.timeout == 0 {
        bail!("--parallel, --max-tokens, --max-body-mb and --timeout must be at least 1");
    }
    let api_key = match &a.api_key_file {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("--api-key-file {}", f.display()))?;
            let key = text.lines().next().unwrap_or("").trim().to_string();
            if key.is_empty() {
                bail!("--api-key-file {}: the file is empty", f.display());
            }
            Some(key)
        }
        None => a.api_key.clone(),
    };
    if api_key.as_deref() == Some("") {
        bail!("--api-key must not be empty");
    }
    let model_id = a.model_name.clone().unwrap_or_else(|| {
        let name = a.model.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name.strip_suffix(".gguf").unwrap_or(&name).to_string()
    });
    if !a.model.model.exists() {
        bail!("{}: no such model file", a.model.model.display());
    }
    let config = Config {
        host: a.host.clone(),
        port: a.port,
        parallel: a.parallel,
        queue: a.queue,
        api_key,
        allow_local_files: a.allow_local_files.clone(),
        model_id,
        think: a.think,
        system: a.system.clone(),
        limits: Limits {
            max_body_bytes: a.max_body_mb << 20,
            max_images: a.max_images,
            image: a.model.limits(),
            max_tiles: a.model.max_tiles,
            max_tokens: a.max_tokens,
            timeout: Duration::from_secs(a.timeout),
        },
    };
    let (ctx, parallel, system) = (a.ctx, a.parallel, a.system.clone());
    let load = Box::new(move || -> Result<Loaded, sail_server::BoxError> {
        // the whole anyhow chain ("loading X: what went wrong"), as the other subcommands print it
        let model = a.model.load().map_err(|e| format!("{e:#}"))?;
        let mut session = a.model.session_params(&model, Some(ctx.min(model.info.hp.n_ctx_train)), system);
        // the sessions share the cores; oversubscribed OpenMP teams spin against each other
        session.n_threads = (a.model.threads() / parallel).max(1);
        Ok(Loaded { model, session })
    });
    sail_server::run(config, load, &STOP)?;
    Ok(())
}
