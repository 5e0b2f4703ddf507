//! `sail run`: one question (with images or video frames), the answer streamed or as JSON,
//! and the parity dumps.

use crate::args::{check_n_predict, prepare, ModelArgs, SamplingArgs};
use crate::STOP;
use anyhow::{bail, Context as _, Result};
use clap::Args;
use sail::session::{Generation, Model, Session, StopReason};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image file (repeatable: several images in one question).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// Video frames: a folder of images or image files; one tile each, sampled uniformly.
    #[arg(long = "frames", num_args = 1..)]
    frames: Vec<PathBuf>,
    /// Frames sampled from --frames.
    #[arg(long = "n-frames", default_value_t = 16)]
    n_frames: usize,
    /// The question.
    #[arg(short = 'p', long = "prompt")]
    prompt: String,
    /// System prompt [default: the model's].
    #[arg(long)]
    system: Option<String>,
    /// Ask for reasoning in <think>…</think> (Thinking variants); --json separates it.
    #[arg(long)]
    think: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Context positions [default: what the prompt and -n need].
    #[arg(long = "ctx")]
    ctx: Option<u32>,
    /// Print one JSON object at the end instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Write the projector output (f32 [image_tokens, n_embd]) as .npy.
    #[arg(long = "embeddings-out")]
    embeddings_out: Option<PathBuf>,
    /// Write the logits at the last prompt position (f32 [n_vocab]) as .npy.
    #[arg(long = "logits-out")]
    logits_out: Option<PathBuf>,
}

const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif"];

/// Frames from folders and files, in name order, `n` sampled at segment midpoints.
fn frame_list(inputs: &[PathBuf], n: usize) -> Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot list frames", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str())))
                .collect();
            v.sort();
            all.extend(v);
        } else {
            all.push(p.clone());
        }
    }
    if all.is_empty() {
        bail!("--frames: no image files in {}", inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    if n == 0 || all.len() <= n {
        return Ok(all);
    }
    Ok((0..n).map(|i| all[((i as f64 + 0.5) * all.len() as f64 / n as f64) as usize].clone()).collect())
}

pub(crate) fn run(a: RunArgs) -> Result<()> {
    let gp = a.sampling.checked(a.think)?;
    if !a.frames.is_empty() && !a.images.is_empty() {
        bail!("--frames and --image cannot be combined");
    }
    for p in a.images.iter() {
        if !p.exists() {
            bail!("{}: no such image file", p.display());
        }
    }
    let model = a.model.load()?;
    check_outputs(&a, &model)?;
    check_n_predict(gp.n_predict, a.ctx, &model)?;
    let mut session = Session::new(model.clone(), a.model.session_params(&model, a.ctx, a.system.clone()));
    for p in &a.images {
        session.add_image(prepare(&model, &a.model, p, None)?)?;
    }
    if !a.frames.is_empty() {
        for f in frame_list(&a.frames, a.n_frames)? {
            session.add_frame(prepare(&model, &a.model, &f, Some(1))?)?;
        }
    }
    let prompt = a.prompt.clone();
    let stream = !a.json;
    let mut out = std::io::stdout().lock();
    let g = session.generate(&prompt, &gp, |_, piece| {
        if stream {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        }
        !STOP.load(Ordering::Relaxed)
    })?;
    if stream {
        let _ = writeln!(out);
    }
    drop(out);
    write_dumps(&a, &g, &model)?;
    if a.json {
        println!("{}", serde_json::to_string(&result_json(&g, a.think))?);
    } else if g.stop == StopReason::Callback {
        eprintln!("sail: stopped");
    }
    Ok(())
}

/// `--embeddings-out` / `--logits-out` may not be devices, FIFOs or folders (the rename that
/// writes them would replace the node), nor one of the files this run reads.
fn check_outputs(a: &RunArgs, model: &Model) -> Result<()> {
    let mut inputs: Vec<&Path> = vec![&model.info.path];
    inputs.extend(model.vision_path.as_deref());
    inputs.extend(a.images.iter().map(PathBuf::as_path));
    inputs.extend(a.frames.iter().map(PathBuf::as_path));
    for p in [&a.embeddings_out, &a.logits_out].into_iter().flatten() {
        sail::format::files::check_output(p, &inputs)?;
    }
    Ok(())
}

fn write_dumps(a: &RunArgs, g: &Generation, model: &Model) -> Result<()> {
    if let Some(p) = &a.embeddings_out {
        let d = model.llm.n_embd_inp();
        sail::npy::write_f32(p, &[g.embeddings.len() / d.max(1), d], &g.embeddings).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &a.logits_out {
        sail::npy::write_f32(p, &[g.prompt_logits.len()], &g.prompt_logits).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn result_json(g: &Generation, think: bool) -> serde_json::Value {
    let t = &g.timings;
    let mut v = json!({
        "tokens": g.tokens,
        "text": g.text,
        "prompt_tokens": g.prompt_token_ids.len(),
        "prompt_token_ids": g.prompt_token_ids,
        "image_tokens": g.image_tokens,
        "tiles": g.tiles,
        "tiles_encoded": g.tiles_encoded,
        "stop": match g.stop { StopReason::Eos => "eos", StopReason::Length => "length", StopReason::Callback => "interrupted" },
        "timings": {
            "load": t.load_ms, "vision": t.vision_ms, "prefill": t.prefill_ms, "decode": t.decode_ms,
            "prefill_tok_s": t.prefill_tok_s(), "decode_tok_s": t.decode_tok_s(),
        },
    });
    if think {
        let (reasoning, answer) = g.split_thinking();
        v["reasoning"] = json!(reasoning);
        v["answer"] = json!(answer);
    }
    v
}
