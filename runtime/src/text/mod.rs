//! The text side: SAIL-VL2's prompt format. (The llama.cpp session that runs the language
//! model lives here too, once it exists.)

pub mod template;
