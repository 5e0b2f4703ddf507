//! SAIL-VL2's `univl-chat` prompt format (spec §6): the markers and default texts the converter
//! records in the language file. The one prompt builder that renders them is `sail::text`.
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
pub const DEFAULT_SYSTEM_PROMPT: &str = "你是由抖音内容理解组开发的多模态大模型，英文名叫UniVL, 是一个有用无害的人工智能助手。";

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
