//! The text side: SAIL-VL2's prompt format, rendered by the one prompt builder.

pub mod prompt;

pub use prompt::{Content, Media, Message, Part, Prompt, PromptBuilder, PromptError, Role};
pub use sail_format::template;
