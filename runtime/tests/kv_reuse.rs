//! KV cache reuse across conversations (`Session::generate_conversation`): a second request that
//! shares a prefix with what the cache holds computes only the rest, and its logits are those of
//! a fresh session. Tiny random model (golden case small-dense, f32), CPU.

use sail::format::quant::{Preset, VisionType};
use sail::session::{GenerateParams, Model, ModelParams, PreparedImage, Session, SessionParams};
use sail::text::{Content, Message, Role};
use sail::vision::decode::ImageLimits;
use sail_testkit::{checkpoint, converted, golden::Case, metrics};
use std::sync::Arc;

fn model() -> (Arc<Model>, Case) {
    let c = Case::load("small-dense").unwrap();
    let argv = c.generator_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let gguf = converted(&checkpoint(&argv), "small-dense", Preset::F32, VisionType::F32);
    sail::ggml::llama_init(false);
    let m = Model::load(&gguf, &ModelParams { n_threads: 2, ..Default::default() }).unwrap();
    (Arc::new(m), c)
}

fn session(m: &Arc<Model>) -> Session {
    Session::new(m.clone(), SessionParams { n_ctx: 1024, n_threads: 2, kv_f32: true, ..Default::default() })
}

fn gp(n: usize) -> GenerateParams {
    let mut g = GenerateParams { n_predict: n, ignore_eos: true, ..Default::default() };
    g.sampler.temperature = 0.0;
    g
}

fn user(image: bool, text: &str) -> Message {
    let mut content = Vec::new();
    if image {
        content.push(Content::Image);
        content.push(Content::Text("\n".into()));
    }
    content.push(Content::Text(text.into()));
    Message { role: Role::User, content }
}

fn image(m: &Model, c: &Case) -> PreparedImage {
    m.prepare_image_file(&c.image().unwrap(), None, ImageLimits::default()).unwrap()
}

/// Logits after reuse against a fresh session's. Positions a fresh session computes in one
/// prompt batch may have been computed otherwise in the cache: the previous reply one token at
/// a time (llama.cpp's matrix-vector kernels rather than its matrix-matrix ones), the last
/// prompt position as a batch of one. Those round differently, so the bound is NMSE 1e-7 (ten
/// times tighter than the f32 parity bound against the reference, cli/tests/cli_run.rs); measured: 0 where the reused
/// prefix was a prompt batch, 4.7e-9 where it held a decoded reply, 2.2e-8 where only the last
/// position was computed. A wrong position, token or image gives NMSE of order 1.
fn assert_same_logits(what: &str, got: &[f32], fresh: &[f32]) -> f64 {
    let nmse = metrics::nmse(got, fresh);
    let max = got.iter().zip(fresh).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("{what}: logits NMSE vs a fresh session {nmse:.3e}, max |diff| {max:.3e}");
    assert!(nmse <= 1e-7, "{what}: logits after reuse differ from a fresh session's: NMSE {nmse:.3e}");
    nmse
}

fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Runs `msgs` (with `images` queued) on `s`; returns the generation.
fn ask(s: &mut Session, msgs: &[Message], images: &[PreparedImage], n: usize) -> sail::session::Generation {
    for i in images {
        s.add_image(i.clone()).unwrap();
    }
    s.generate_conversation(Some("You are a test."), msgs, &gp(n), |_, _| true).unwrap()
}

#[test]
fn shared_prefix_is_not_recomputed_and_logits_match_a_fresh_session() {
    let (m, c) = model();
    let img = image(&m, &c);
    let mut s = session(&m);

    // 1. text: same system prompt, another question
    let g1 = ask(&mut s, &[user(false, "What is the capital of France?")], &[], 4);
    assert_eq!(g1.timings.reused_tokens, 0);
    assert_eq!(g1.timings.prefill_tokens, g1.prompt_token_ids.len());
    let q2 = [user(false, "Name three colours.")];
    let g2 = ask(&mut s, &q2, &[], 4);
    let fresh = ask(&mut session(&m), &q2, &[], 4);
    assert_eq!(g2.prompt_token_ids, fresh.prompt_token_ids);
    let shared = common_prefix(&g1.prompt_token_ids, &g2.prompt_token_ids);
    assert!(shared > 5, "the system prompt should be shared: {shared}");
    assert_eq!(g2.timings.reused_tokens, shared);
    assert_eq!(g2.timings.prefill_tokens, g2.prompt_token_ids.len() - shared);
    // the reused prefix and the fresh prefill were both prompt batches: bit-identical
    assert_eq!(assert_same_logits("same system prompt", &g2.prompt_logits, &fresh.prompt_logits), 0.0);
    assert_eq!(g2.tokens, fresh.tokens);

    // 2. multi-turn: the history repeats the last exchange; the cache holds it up to the reply
    let reply = Message::text(Role::Assistant, g2.text.clone());
    let turn2 = [q2[0].clone(), reply, user(false, "And three more?")];
    let g3 = ask(&mut s, &turn2, &[], 4);
    let fresh = ask(&mut session(&m), &turn2, &[], 4);
    assert!(g3.timings.reused_tokens > g2.prompt_token_ids.len(), "reused {} of {}", g3.timings.reused_tokens, g3.prompt_token_ids.len());
    assert_same_logits("multi-turn", &g3.prompt_logits, &fresh.prompt_logits);
    assert_eq!(g3.tokens, fresh.tokens);

    // 3. an image conversation, then the same image with another question: the image span is
    // reused, not encoded again
    let g4 = ask(&mut s, &[user(true, "Describe it.")], std::slice::from_ref(&img), 3);
    assert!(g4.image_tokens > 0 && !g4.embeddings.is_empty());
    let q5 = [user(true, "What colour is it?")];
    let g5 = ask(&mut s, &q5, std::slice::from_ref(&img), 3);
    let fresh = ask(&mut session(&m), &q5, std::slice::from_ref(&img), 3);
    let shared = common_prefix(&g4.prompt_token_ids, &g5.prompt_token_ids);
    assert_eq!(g5.timings.reused_tokens, shared);
    assert!(shared > g5.image_tokens, "{shared}");
    assert!(g5.embeddings.is_empty(), "a cached image was encoded again");
    assert_same_logits("same image", &g5.prompt_logits, &fresh.prompt_logits);
    assert_eq!(g5.tokens, fresh.tokens);

    // 4. another picture in the same place: the token ids agree (placeholders) but the rows do
    // not, so reuse stops where the image span starts
    let decoded = sail::vision::decode::load_image(&c.image().unwrap(), ImageLimits::default()).unwrap();
    let mut rgb = decoded.to_rgb8();
    rgb.iter_mut().take(3000).for_each(|p| *p = 255 - *p);
    let changed = sail::vision::decode::from_rgb8(decoded.width(), decoded.height(), &rgb).unwrap();
    let other = m.prepare_image(&changed, None, ImageLimits::default()).unwrap();
    assert_eq!(other.tiles, img.tiles);
    let g6 = ask(&mut s, &q5, std::slice::from_ref(&other), 3);
    let fresh = ask(&mut session(&m), &q5, std::slice::from_ref(&other), 3);
    let span_start = g6.prompt_token_ids.iter().position(|&t| t == m.info.img_context).unwrap();
    assert_eq!(g6.timings.reused_tokens, span_start);
    assert!(!g6.embeddings.is_empty());
    assert_same_logits("other image", &g6.prompt_logits, &fresh.prompt_logits);

    // 5. the identical request again: everything but the last prompt position is reused
    let g7 = ask(&mut s, &q5, std::slice::from_ref(&other), 3);
    assert_eq!(g7.timings.reused_tokens, g7.prompt_token_ids.len() - 1);
    assert_eq!(g7.timings.prefill_tokens, 1);
    assert_same_logits("identical request", &g7.prompt_logits, &fresh.prompt_logits);
    assert_eq!(g7.tokens, fresh.tokens);
}

#[test]
fn reset_and_turns_still_start_clean() {
    let (m, _) = model();
    let mut s = session(&m);
    let first = s.generate("Hello there", &gp(3), |_, _| true).unwrap();
    // a follow-up turn continues the cache (no reuse accounting: it appends)
    let follow = s.generate("Again", &gp(3), |_, _| true).unwrap();
    assert_eq!(follow.timings.reused_tokens, 0);
    assert!(s.n_past() > first.prompt_token_ids.len() + follow.prompt_token_ids.len());
    // after reset the same first question computes everything again and matches
    s.reset();
    let again = s.generate("Hello there", &gp(3), |_, _| true).unwrap();
    assert_eq!(again.timings.reused_tokens, 0);
    assert_eq!(again.prompt_logits, first.prompt_logits);
    assert_eq!(again.tokens, first.tokens);
}
