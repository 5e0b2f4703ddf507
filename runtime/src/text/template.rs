//! SAIL-VL2's `univl-chat` prompt format (spec §6), written out by hand.
//!
//! The checkpoint's own `tokenizer_config.json` carries an unrelated Kimi-VL template and its
//! `chat_template.jinja` renders system turns with tokens that are not in the vocabulary, so
//! neither is used: this module emits what SAIL's `conversation.py` produces, which is what
//! the model was trained on. Note the absence of a newline after `<|im_end|>`.

pub const TEMPLATE_NAME: &str = "univl-chat";
pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
pub const ENDOFTEXT: &str = "<|endoftext|>";
pub const IMG_START: &str = "<img>";
pub const IMG_END: &str = "</img>";
pub const IMG_CONTEXT: &str = "<IMG_CONTEXT>";
pub const THINK_START: &str = "<think>";
pub const THINK_END: &str = "</think>";

/// The default system prompt, used whenever the caller gives none.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "你是由抖音内容理解组开发的多模态大模型，英文名叫UniVL, 是一个有用无害的人工智能助手。";

/// The official chain-of-thought instruction of the Thinking variants, appended directly (no
/// separating space) to the user's text.
pub const THINK_PROMPT: &str = "You FIRST think about the reasoning process as an internal monologue and then provide the final answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in \\boxed{}.";

/// A Jinja rendering of the same format for `tokenizer.chat_template`, so llama.cpp's
/// `--jinja` chat gets SAIL's layout rather than ChatML's.
pub const CHAT_TEMPLATE_JINJA: &str = concat!(
    "{%- if messages[0]['role'] == 'system' -%}",
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>' -}}",
    "{%- set rest = messages[1:] -%}",
    "{%- else -%}",
    "{{- '<|im_start|>system\\n你是由抖音内容理解组开发的多模态大模型，英文名叫UniVL, 是一个有用无害的人工智能助手。<|im_end|>' -}}",
    "{%- set rest = messages -%}",
    "{%- endif -%}",
    "{%- for m in rest -%}",
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' -}}",
    "{%- endfor -%}",
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
);

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// Renders a conversation ending with an open assistant turn. `<image>` placeholders in user
/// text are left for the caller to expand (see [`expand_images`]).
pub fn render(system: Option<&str>, turns: &[Turn]) -> String {
    let mut s = String::new();
    s.push_str(IM_START);
    s.push_str("system\n");
    s.push_str(system.unwrap_or(DEFAULT_SYSTEM_PROMPT));
    s.push_str(IM_END);
    for t in turns {
        s.push_str(IM_START);
        s.push_str(t.role.as_str());
        s.push('\n');
        s.push_str(&t.content);
        s.push_str(IM_END);
    }
    s.push_str(IM_START);
    s.push_str("assistant\n");
    s
}

/// The user text for a question with `n_images` images: `<image>\n` per image before the text,
/// as SAIL's `chat()` does, unless the text already places its `<image>` markers.
pub fn user_text(question: &str, n_images: usize, think: bool) -> String {
    let mut q = question.to_string();
    if think {
        q.push_str(THINK_PROMPT);
    }
    if n_images == 0 || q.contains("<image>") {
        return q;
    }
    let mut s = "<image>\n".repeat(n_images);
    s.push_str(&q);
    s
}

/// Replaces the k-th `<image>` with `<img>` + `<IMG_CONTEXT>`×tokens[k] + `</img>`.
pub fn expand_images(text: &str, tokens: &[usize]) -> Result<String, String> {
    let parts: Vec<&str> = text.split("<image>").collect();
    if parts.len() - 1 != tokens.len() {
        return Err(format!("the prompt has {} <image> markers for {} images", parts.len() - 1, tokens.len()));
    }
    let mut s = String::from(parts[0]);
    for (p, &n) in parts[1..].iter().zip(tokens) {
        s.push_str(IMG_START);
        s.push_str(&IMG_CONTEXT.repeat(n));
        s.push_str(IMG_END);
        s.push_str(p);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_spec_example() {
        let u = user_text("What is in the image?", 1, false);
        let p = expand_images(&render(None, &[Turn { role: Role::User, content: u }]), &[3]).unwrap();
        let want = format!(
            "<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|><|im_start|>user\n<img>{}</img>\nWhat is in the image?<|im_end|><|im_start|>assistant\n",
            "<IMG_CONTEXT>".repeat(3)
        );
        assert_eq!(p, want);
        assert!(!p.contains("<|im_end|>\n"));
    }

    #[test]
    fn think_prompt_is_appended_without_space() {
        assert!(user_text("describe the image", 0, true).starts_with("describe the imageYou FIRST"));
        assert_eq!(expand_images("a <image> b", &[]).unwrap_err(), "the prompt has 1 <image> markers for 0 images");
    }
}
