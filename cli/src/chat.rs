//! `sail chat`: an interactive conversation whose history stays in the KV cache.

use crate::args::{check_n_predict, prepare, ModelArgs, SamplingArgs};
use crate::STOP;
use anyhow::Result;
use clap::Args;
use sail::session::Session;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    system: Option<String>,
    #[arg(long)]
    think: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Context positions for the whole conversation.
    #[arg(long = "ctx", default_value_t = 8192)]
    ctx: u32,
}

pub(crate) fn chat(a: ChatArgs) -> Result<()> {
    let gp = a.sampling.checked(a.think)?;
    let model = a.model.load()?;
    check_n_predict(gp.n_predict, Some(a.ctx), &model)?;
    let mut session = Session::new(model.clone(), a.model.session_params(&model, Some(a.ctx), a.system.clone()));
    eprintln!("sail chat: type a question; /image PATH attaches an image, /reset forgets, /exit quits.");
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        eprint!("> ");
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let q = line.trim();
        if q.is_empty() {
            continue;
        }
        if q == "/exit" || q == "/quit" {
            break;
        }
        if q == "/reset" {
            session.reset();
            eprintln!("(conversation cleared)");
            continue;
        }
        if let Some(p) = q.strip_prefix("/image") {
            match prepare(&model, &a.model, Path::new(p.trim()), None).and_then(|img| {
                let t = (img.tiles, img.cache_hit().is_some());
                session.add_image(img)?;
                Ok(t)
            }) {
                Ok((t, false)) => eprintln!("(image attached: {t} tiles)"),
                Ok((t, true)) => eprintln!("(image attached: {t} tiles, encoded before: from the cache)"),
                Err(e) => eprintln!("sail: {e:#}"),
            }
            continue;
        }
        STOP.store(false, Ordering::SeqCst);
        let mut out = std::io::stdout().lock();
        let r = session.generate(q, &gp, |_, piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
            !STOP.load(Ordering::Relaxed)
        });
        let _ = writeln!(out);
        match r {
            Ok(g) if g.tiles > 0 => eprintln!(
                "({} tokens, {:.1} tok/s; {} of {} tiles encoded in {:.0} ms; context {}/{})",
                g.tokens.len(),
                g.timings.decode_tok_s(),
                g.tiles_encoded,
                g.tiles,
                g.timings.vision_ms,
                session.n_past(),
                a.ctx
            ),
            Ok(g) => {
                eprintln!("({} tokens, {:.1} tok/s; context {}/{})", g.tokens.len(), g.timings.decode_tok_s(), session.n_past(), a.ctx)
            }
            Err(e) => eprintln!("sail: {e:#}"),
        }
    }
    Ok(())
}
