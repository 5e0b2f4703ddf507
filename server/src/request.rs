//! A chat completion request, checked and turned into the library's terms before it waits for a
//! session: every problem a client can cause is found here and answered with a 400 naming the
//! field, so nothing the client sends reaches the engine unchecked.
//!
//! Rendering: messages go to the one prompt builder as they are. In a message's content, text
//! parts are written as they come, consecutive ones joined by a newline; an `image_url` part is
//! the image followed by a newline, SAIL's `<image>\n` convention — so `[image, text Q]` renders
//! exactly as `sail run --image X -p Q`.

use crate::error::ApiError;
use crate::images::ImageRef;
use crate::Limits;
use sail::ggml::{SamplerError, SamplerParams};
use sail::session::GenerateParams;
use sail::text::{Content, Message, Role};
use serde::Deserialize;
use serde_json::Value;

/// The most stop strings a request may give, and the longest one.
const MAX_STOPS: usize = 16;
const MAX_STOP_BYTES: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The body of `POST /v1/chat/completions`. Fields this server does not know are ignored, as
/// OpenAI-compatible servers do; fields it knows but cannot honour are refused.
#[derive(Debug, Deserialize)]
struct Body {
    messages: Vec<RawMessage>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    /// Not OpenAI's; llama.cpp's server and others take it.
    top_k: Option<i32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    seed: Option<i64>,
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    n: Option<u64>,
    #[serde(default)]
    logprobs: bool,
    tools: Option<Vec<Value>>,
    response_format: Option<Value>,
    /// sail's: keep generating past `<|im_end|>` until max_tokens.
    #[serde(default)]
    ignore_eos: bool,
    /// sail's: ask a Thinking model to reason first (the CLI's `--think`); default: the server's.
    think: Option<bool>,
    /// sail's: add the prompt's and the answer's token ids to the response.
    #[serde(default)]
    return_token_ids: bool,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

/// A checked request.
#[derive(Debug)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    /// The conversation's images, in prompt order.
    pub images: Vec<ImageRef>,
    pub gen: GenerateParams,
    /// max_tokens was not given: the server may lower it to what the context has room for.
    pub default_max_tokens: bool,
    pub stops: Vec<String>,
    pub think: bool,
    pub stream: bool,
    pub include_usage: bool,
    pub return_token_ids: bool,
}

fn sampler_error(e: SamplerError) -> ApiError {
    match e {
        SamplerError::Temperature(v) => ApiError::bad("temperature", format!("temperature {v} must be ≥ 0")),
        SamplerError::TopK(v) => ApiError::bad("top_k", format!("top_k {v} must be ≥ 0")),
        SamplerError::TopP(v) => ApiError::bad("top_p", format!("top_p {v} must be in (0, 1]")),
        SamplerError::MinP(v) => ApiError::bad("min_p", format!("min_p {v} must be in [0, 1]")),
        SamplerError::RepeatPenalty(v) => ApiError::bad("repeat_penalty", format!("repeat_penalty {v} must be > 0")),
        SamplerError::RepeatLastN(v) => ApiError::bad("repeat_penalty", format!("repetition window {v} out of range")),
    }
}

/// A seed for requests that give none.
fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish() as u32
}

impl ChatRequest {
    pub fn parse(body: &[u8], limits: &Limits, think_default: bool, think_prompt: &str) -> Result<ChatRequest, ApiError> {
        let b: Body = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad("body", format!("the request body is not a valid chat request: {e}")))?;
        if b.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad("n", "only n = 1 is supported"));
        }
        if b.logprobs {
            return Err(ApiError::bad("logprobs", "logprobs are not supported"));
        }
        if b.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::bad("tools", "tools (function calling) are not supported"));
        }
        if let Some(f) = &b.response_format {
            if f.get("type").and_then(Value::as_str).is_some_and(|t| t != "text") {
                return Err(ApiError::bad("response_format", "only the text response format is supported"));
            }
        }
        let max = limits.max_tokens as u64;
        let (n_predict, default_max_tokens) = match b.max_completion_tokens.or(b.max_tokens) {
            None => (limits.max_tokens, true),
            Some(0) => return Err(ApiError::bad("max_tokens", "max_tokens must be at least 1")),
            Some(n) if n > max => {
                return Err(ApiError::bad("max_tokens", format!("max_tokens {n} is over this server's limit of {max} (--max-tokens)")))
            }
            Some(n) => (n as usize, false),
        };
        let sampler = SamplerParams {
            temperature: b.temperature.unwrap_or(1.0),
            top_k: b.top_k.unwrap_or(0),
            top_p: b.top_p.unwrap_or(1.0),
            min_p: b.min_p.unwrap_or(0.0),
            repeat_penalty: b.repeat_penalty.unwrap_or(1.0),
            repeat_last_n: 64,
            seed: b.seed.map(|s| s as u64 as u32).unwrap_or_else(random_seed),
        };
        sampler.validate().map_err(sampler_error)?;
        let stops = match b.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        if stops.len() > MAX_STOPS {
            return Err(ApiError::bad("stop", format!("at most {MAX_STOPS} stop strings")));
        }
        if stops.iter().any(|s| s.is_empty() || s.len() > MAX_STOP_BYTES) {
            return Err(ApiError::bad("stop", format!("stop strings must be 1 to {MAX_STOP_BYTES} bytes")));
        }
        let think = b.think.unwrap_or(think_default);
        let (mut messages, images) = messages(&b.messages, limits.max_images)?;
        if think {
            // the CLI's --think: the instruction follows the question directly
            if let Some(last) = messages.last_mut().filter(|m| m.role == Role::User) {
                match last.content.last_mut() {
                    Some(Content::Text(t)) => t.push_str(think_prompt),
                    _ => last.content.push(Content::Text(think_prompt.to_string())),
                }
            }
        }
        Ok(ChatRequest {
            messages,
            images,
            gen: GenerateParams { n_predict, sampler, ignore_eos: b.ignore_eos, think: false },
            default_max_tokens,
            stops,
            think,
            stream: b.stream,
            include_usage: b.stream_options.unwrap_or_default().include_usage,
            return_token_ids: b.return_token_ids,
        })
    }
}

/// The messages in the prompt builder's terms, and their images in order.
fn messages(raw: &[RawMessage], max_images: usize) -> Result<(Vec<Message>, Vec<ImageRef>), ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad("messages", "messages is empty"));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut images = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad(format!("{at}.role"), format!("{at}: role {other:?} is not supported (system, user, assistant)")))
            }
        };
        let mut content: Vec<Content> = Vec::new();
        let text = |content: &mut Vec<Content>, t: &str| match content.last_mut() {
            Some(Content::Text(prev)) => {
                if !prev.is_empty() && !prev.ends_with('\n') {
                    prev.push('\n');
                }
                prev.push_str(t);
            }
            _ => content.push(Content::Text(t.to_string())),
        };
        match &m.content {
            Value::Null if role == Role::Assistant => {}
            Value::String(s) => text(&mut content, s),
            Value::Array(parts) => {
                for (j, p) in parts.iter().enumerate() {
                    let at = format!("{at}.content[{j}]");
                    match p.get("type").and_then(Value::as_str) {
                        Some("text") => match p.get("text").and_then(Value::as_str) {
                            Some(t) => text(&mut content, t),
                            None => return Err(ApiError::bad(&at, format!("{at}: a text part needs a string \"text\""))),
                        },
                        Some("image_url") => {
                            if role != Role::User {
                                return Err(ApiError::bad(&at, format!("{at}: images are only accepted in user messages")));
                            }
                            let url = match p.get("image_url") {
                                Some(Value::String(u)) => Some(u.as_str()),
                                Some(o) => o.get("url").and_then(Value::as_str),
                                None => None,
                            };
                            let Some(url) = url else {
                                return Err(ApiError::bad(&at, format!("{at}: an image_url part needs \"image_url\": {{\"url\": ...}}")));
                            };
                            if images.len() == max_images {
                                return Err(ApiError::bad(&at, format!("more than {max_images} images in one request (--max-images)")));
                            }
                            images.push(ImageRef { url: url.to_string(), at: at.clone() });
                            content.push(Content::Image);
                            content.push(Content::Text("\n".into()));
                        }
                        Some(other) => {
                            return Err(ApiError::bad(&at, format!("{at}: content part type {other:?} is not supported (text, image_url)")))
                        }
                        None => return Err(ApiError::bad(&at, format!("{at}: a content part needs a \"type\""))),
                    }
                }
            }
            _ => return Err(ApiError::bad(format!("{at}.content"), format!("{at}: content must be a string or a list of parts"))),
        }
        out.push(Message { role, content });
    }
    Ok((out, images))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_tokens: 100, max_images: 2, ..Limits::default() }
    }

    fn parse(v: Value) -> Result<ChatRequest, ApiError> {
        ChatRequest::parse(v.to_string().as_bytes(), &limits(), false, "THINK")
    }

    #[test]
    fn image_then_text_renders_like_sail_run() {
        let r = parse(serde_json::json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "What is it?"}]}]}))
        .unwrap();
        // sail run --image X -p Q builds [Image, Text("\nQ")]: the same text once rendered
        let rendered: Vec<String> =
            r.messages[0].content.iter().map(|c| if let Content::Text(t) = c { t.clone() } else { "<IMG>".into() }).collect();
        assert_eq!(rendered.concat(), "<IMG>\nWhat is it?");
        assert_eq!(r.images.len(), 1);
        assert_eq!(r.images[0].at, "messages[0].content[0]");
        assert!(r.default_max_tokens && r.gen.n_predict == 100);
    }

    #[test]
    fn text_parts_join_with_newlines_and_think_appends() {
        let r = ChatRequest::parse(
            serde_json::json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "think": true})
                .to_string()
                .as_bytes(),
            &limits(),
            false,
            "THINK",
        )
        .unwrap();
        assert_eq!(r.messages[0].content, vec![Content::Text("a\nbTHINK".into())]);
        assert!(r.think);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (serde_json::json!({"messages": []}), "messages"),
            (serde_json::json!({"messages": [{"role": "tool", "content": "x"}]}), "messages[0].role"),
            (serde_json::json!({"messages": [{"role": "user", "content": 3}]}), "messages[0].content"),
            (serde_json::json!({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}), "messages[0].content[0]"),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "temperature": -1}), "temperature"),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "top_p": 0}), "top_p"),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 101}), "max_tokens"),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}), "max_tokens"),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "stop": ""}), "stop"),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "n": 2}), "n"),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "tools": [{}]}), "tools"),
            (serde_json::json!({"messages": "x"}), "body"),
        ];
        for (body, param) in cases {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
        let img = serde_json::json!({"type": "image_url", "image_url": {"url": "data:,"}});
        let e = parse(serde_json::json!({"messages": [{"role": "user", "content": [img, img, img]}]})).unwrap_err();
        assert!(e.message.contains("more than 2 images"), "{}", e.message);
        let e = parse(serde_json::json!({"messages": [{"role": "assistant", "content": [img]}, {"role": "user", "content": "x"}]}))
            .unwrap_err();
        assert!(e.message.contains("only accepted in user messages"), "{}", e.message);
    }

    #[test]
    fn stop_as_string_or_list_and_defaults() {
        let r =
            parse(serde_json::json!({"messages": [{"role": "user", "content": "x"}], "stop": "END", "seed": 7, "temperature": 0})).unwrap();
        assert_eq!(r.stops, ["END"]);
        assert_eq!(r.gen.sampler.seed, 7);
        let r = parse(serde_json::json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"], "max_tokens": 5})).unwrap();
        assert_eq!(r.stops, ["a", "b"]);
        assert_eq!(r.gen.n_predict, 5);
        assert!(!r.default_max_tokens);
    }
}
