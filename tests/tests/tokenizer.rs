//! llama.cpp's tokenization of our GGUF equals Hugging Face `tokenizers` on tokenizer.json.

use sail_format::quant::{Preset, VisionType};
use sail_testkit::{checkpoint, converted, llama};
use tokenizers::Tokenizer;

fn corpus() -> Vec<String> {
    let mut v: Vec<String> = [
        "Hello, world!",
        "The quick brown fox jumps over the lazy dog.",
        "  leading spaces and trailing   ",
        "tabs\tand\nnewlines\r\n\r\nand more\n\n\n",
        "I'm sure they'll say it's what we'd've done, isn't it? YOU'RE RIGHT.",
        "Numbers: 1234567890 3.14159 1e-6 0x1F 1,000,000",
        "你好，世界！今天天气很好。",
        "你是由抖音内容理解组开发的多模态大模型，英文名叫UniVL, 是一个有用无害的人工智能助手。",
        "日本語のテキストとカタカナ、ひらがな。",
        "한국어 문장도 있습니다.",
        "Ελληνικά και русский текст.",
        "emoji: 😀🎉👍🏽👨‍👩‍👧‍👦 🇺🇸 ❤️",
        "fn main() {\n    println!(\"{}\", x + 1);\n}\n",
        "def f(x):\n\treturn [i**2 for i in range(x) if i % 2 == 0]\n",
        "<html><body class=\"a\">&nbsp;</body></html>",
        "SELECT * FROM t WHERE a >= 10 AND b <> 'x';",
        "                                        ",
        "\n\n\n\n",
        "a\u{00a0}b\u{2003}c\u{3000}d",
        "<|im_start|>user\nWhat is this?<|im_end|><|im_start|>assistant\n",
        "<img><IMG_CONTEXT><IMG_CONTEXT></img>\nDescribe.",
        "<think>reasoning</think>The answer is \\boxed{42}.",
        "<tool_call>{\"name\": \"f\"}</tool_call>",
        "<|endoftext|><|box_start|>(10,20),(30,40)<|box_end|>",
        "mixed 中文 and English 123 😀 <|im_end|>",
        "ﬁ ligature, combining é vs é, zero\u{200b}width",
        "URL: https://example.com/path?q=1&r=2#frag",
        "$$\\int_0^1 x^2 dx = \\frac{1}{3}$$",
        "''''' \"\"\"\"\" ````` ~~~~~",
        "A",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // whitespace runs of every length up to 20, with and without following text
    for n in 1..=20 {
        v.push(" ".repeat(n));
        v.push(format!("{}x", " ".repeat(n)));
        v.push(format!("x{}\n", "\n".repeat(n % 5)));
    }
    v
}

#[test]
fn llama_cpp_tokenizes_like_hf_tokenizers() {
    let ck = checkpoint(&["--seed", "1", "--dtype", "bfloat16"]);
    let gguf = converted(&ck, "tok", Preset::F16, VisionType::F16);
    let model = llama::load(&gguf).unwrap();
    let hf = Tokenizer::from_file(ck.join("tokenizer.json")).unwrap();
    let texts = corpus();
    let mut same = 0;
    let mut diffs = Vec::new();
    for t in &texts {
        let want: Vec<i32> = hf.encode(t.as_str(), false).unwrap().get_ids().iter().map(|&i| i as i32).collect();
        let got: Vec<i32> = model.vocab().tokenize(t.as_bytes(), false, true).iter().map(|t| t.0).collect();
        if got == want {
            same += 1;
        } else {
            diffs.push(format!("{t:?}: llama.cpp {got:?} vs HF {want:?}"));
        }
    }
    eprintln!("tokenization: {same}/{} sequences identical", texts.len());
    assert!(diffs.is_empty(), "{} differ:\n{}", diffs.len(), diffs.join("\n"));
}
