//! The fuzz targets: each takes arbitrary bytes, drives one parser of untrusted input the way
//! sail does, and panics only when an invariant breaks (a crash, abort or hang is a finding by
//! itself). Errors are the expected outcome for most inputs and are not findings.

use sail::text::{Content, Media, Message, Part, PromptBuilder, Role};
use sail::vision::decode::{load_image_from_memory, ImageLimits};
use sail::vision::tiling::PreprocessConfig;
use sail::vision::{preprocess, preprocess_single};
use sail_convert::hf::HfConfig;
use sail_convert::layout::check_layout;
use sail_convert::safetensors::Checkpoint;
use sail_convert::tokenizer::Vocab;
use sail_format::gguf::GgufFile;
use sail_format::names::{instances, FilePart};
use sail_format::template as tpl;
use sail_format::{validate, LlmHparams, VisionHparams};
use std::path::{Path, PathBuf};

/// Inputs that got past every check into the deepest step of their target (a validated file,
/// a converted layout, tiles, a rendered prompt, an encoded tile): a run that never gets there
/// tests only the front door.
pub static DEEP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn deep() {
    DEEP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Separates the files of a Hugging Face folder in one fuzz input.
pub const HF_SEPARATOR: &[u8] = b"\n--8<--\n";
/// The files of the folder, in input order.
pub const HF_FILES: [&str; 4] = ["config.json", "preprocessor_config.json", "tokenizer.json", "model.safetensors"];

/// A scratch folder private to this process and thread (tmpfs where there is one).
pub fn scratch() -> PathBuf {
    thread_local! {
        static DIR: PathBuf = {
            let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
            let d = base.join(format!("sail-fuzz-{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], ""));
            std::fs::create_dir_all(&d).expect("fuzz scratch folder");
            d
        };
    }
    DIR.with(|d| d.clone())
}

/// A GGUF file: the reader, then the validator of whichever kind it claims to be. A file the
/// validator accepts must have every expected tensor inside the file.
pub fn gguf(data: &[u8]) {
    let Ok(f) = GgufFile::from_bytes(Path::new("fuzz.gguf"), data) else { return };
    for t in &f.tensors {
        assert!(t.offset.checked_add(t.n_bytes).is_some_and(|e| e <= f.file_size()), "tensor {} outside the file", t.name);
        let _ = f.tensor_data(t);
    }
    let _ = LlmHparams::from_gguf(&f);
    let _ = VisionHparams::from_gguf(&f);
    match validate::any(&f) {
        Err(e) => assert!(e.to_string().len() < 16 << 10, "a message of {} bytes", e.to_string().len()),
        Ok(()) => {
            deep();
            let (llm, vis, part) = match validate::language(&f) {
                Ok(h) => (Some(h), None, FilePart::Llm),
                Err(_) => (None, Some(validate::vision(&f).expect("one of the two passed")), FilePart::Vision),
            };
            let tied = f.tensor("output.weight").is_none();
            for inst in instances(llm.as_ref(), vis.as_ref(), tied).iter().filter(|i| i.entry().file == part) {
                let t = f.tensor(&inst.gguf).unwrap_or_else(|| panic!("validated file lacks {}", inst.gguf));
                assert_eq!(t.offset % 32, 0, "{} misaligned", t.name);
            }
        }
    }
}

/// Splits a fuzz input into the files of a Hugging Face folder.
pub fn hf_parts(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < HF_FILES.len() - 1 {
        match rest.windows(HF_SEPARATOR.len()).position(|w| w == HF_SEPARATOR) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + HF_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// A Hugging Face checkpoint folder: config, preprocessor config, tokenizer and safetensors
/// through the converter's readers and its layout check, then every tensor row range it
/// would read.
pub fn hf_folder(data: &[u8]) {
    let dir = scratch().join("hf");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    for (name, part) in HF_FILES.iter().zip(hf_parts(data)) {
        std::fs::write(dir.join(name), part).expect("scratch write");
    }
    let cfg = HfConfig::load(&dir);
    let n_vocab = cfg.as_ref().map(|c| c.llm.n_vocab as usize).unwrap_or(300);
    let _ = Vocab::load(&dir.join("tokenizer.json"), n_vocab);
    let (Ok(cfg), Ok(ck)) = (cfg, Checkpoint::open(&dir)) else { return };
    let Ok(layout) = check_layout(&cfg, &ck) else { return };
    deep();
    let mut buf = Vec::new();
    for inst in &layout.instances {
        for hf in &inst.hf {
            let t = &ck.tensors[hf];
            let n0 = *t.shape.last().unwrap_or(&1) as usize;
            let rows = (t.shape.iter().product::<u64>() as usize).checked_div(n0).unwrap_or(0);
            if rows > 0 {
                ck.rows_f32(t, n0, 0, 1, &mut buf);
                ck.rows_f32(t, n0, rows - 1, 1, &mut buf);
                assert_eq!(buf.len(), n0);
            }
        }
    }
}

/// An image file: the decoder (under a small pixel budget) and SAIL's tiling with a tile size
/// and tile limit taken from the input.
pub fn image(data: &[u8]) {
    let limits = ImageLimits { max_pixels: 1 << 22 };
    let Ok(img) = load_image_from_memory(data, limits) else { return };
    let pick = data.last().copied().unwrap_or(0);
    let tile = [28u32, 56, 14, 42][(pick & 3) as usize];
    let mut cfg = PreprocessConfig::new(tile, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 1 + (pick >> 2) as u32 % 12);
    cfg.use_thumbnail = pick & 0x80 != 0;
    cfg.limits = limits;
    if let Ok(p) = preprocess(&img, &cfg) {
        deep();
        assert_eq!(p.pixels.len(), p.tiles * 3 * (tile as usize).pow(2));
        assert!(p.tiles >= 1 && p.tiles <= cfg.max_tiles as usize + 1);
        assert!(p.pixels.iter().all(|v| v.is_finite()));
    }
    let _ = preprocess_single(&img, &cfg);
}

/// The prompt builder: text from the input in every slot a user or server controls. Whatever
/// the text says, the control tokens are the template's own and the image slots are exactly
/// the images given.
pub fn prompt(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\u{1}');
    let flags = fields.next().and_then(|f| f.bytes().next()).unwrap_or(0);
    let system = fields.next();
    let question = fields.next().unwrap_or("");
    let reply = fields.next().unwrap_or("");
    let b = PromptBuilder::new(tpl::DEFAULT_SYSTEM_PROMPT, tpl::THINK_PROMPT);
    let n = (flags & 3) as usize;
    let media = if flags & 4 != 0 { Media::Frames(n) } else { Media::Images(n) };
    let Ok(user) = b.user(question, media, flags & 8 != 0) else { return };
    let conv = if flags & 16 != 0 {
        let msgs = [user.clone(), Message::text(Role::Assistant, reply), user.clone()];
        b.conversation(system, &msgs)
    } else {
        b.conversation(system, std::slice::from_ref(&user))
    };
    let Ok(p) = conv else { return };
    deep();
    let images = p.parts.iter().filter(|x| matches!(x, Part::Image(_))).count();
    assert_eq!(images, p.n_images);
    for part in &p.parts {
        if let Part::Control(c) = part {
            assert!([tpl::IM_START, tpl::IM_END, tpl::IMG_START, tpl::IMG_END].contains(c), "control {c:?}");
        }
    }
    let starts = p.parts.iter().filter(|x| matches!(x, Part::Control(c) if *c == tpl::IM_START)).count();
    let messages = if flags & 16 != 0 { 3 } else { 1 };
    assert_eq!(starts, messages + 2, "system + messages + the open assistant turn");
    let _ = p.to_text(tpl::IMG_CONTEXT, |_| 4);
    let _ = b.follow_up(&user, flags & 32 != 0);
    let _ = Content::Text(String::new());
}

/// Reads small numbers from the input, cycling; a structure-aware view of the bytes.
#[derive(Debug)]
pub struct Picks<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Picks<'a> {
    pub fn new(data: &'a [u8]) -> Picks<'a> {
        Picks { data, at: 0 }
    }
    pub fn byte(&mut self) -> u8 {
        let b = if self.data.is_empty() { 0 } else { self.data[self.at % self.data.len()] };
        self.at += 1;
        b
    }
    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.byte() as usize % from.len()]
    }
}

/// The vision hyperparameters and tensor types a graph-target input describes: mostly small
/// valid towers, and every value the validator must catch (bad eps, f16 norms, sizes that do
/// not divide).
#[cfg(feature = "engine")]
pub fn graph_spec(data: &[u8]) -> (VisionHparams, [sail_format::GgmlType; 3]) {
    use sail_format::{GgmlType, PsVersion};
    let mut p = Picks::new(data);
    let eps = [1e-5f32, 1e-6, 1e-5, 1e-5, 0.0, -1e-5, f32::NAN, f32::INFINITY, 0.5, 1e-30];
    let patch = p.pick(&[14u32, 14, 7, 4, 2, 1, 0, 16]);
    let grid = p.pick(&[2u32, 2, 4, 1, 3, 6, 8]);
    let n_head = p.pick(&[1u32, 2, 2, 4, 3, 0]);
    let hd = p.pick(&[2u32, 4, 4, 8, 1, 3]);
    let hp = VisionHparams {
        image_size: patch * grid + p.pick(&[0u32, 0, 0, 0, 1]),
        patch_size: patch,
        n_channels: p.pick(&[3u32, 3, 3, 1]),
        n_embd: n_head * hd + p.pick(&[0u32, 0, 0, 1]),
        n_ff: p.pick(&[8u32, 16, 4, 0, 6]),
        n_layer: p.pick(&[1u32, 2, 1, 3, 0]),
        n_head,
        rms_eps: p.pick(&eps),
        select_layer: p.pick(&[-1i32, -1, -1, 0, 1, -2, 2, -4, i32::MIN]),
        ps_version: p.pick(&[PsVersion::V2, PsVersion::V1]),
        downsample_ratio: p.pick(&[0.5f32, 0.5, 1.0, 0.25, 0.3, 0.0, f32::NAN, 2.0]),
        proj_ln_eps: p.pick(&eps),
        proj_dim: p.pick(&[8u32, 16, 4, 1, 0]),
        image_mean: [0.5, p.pick(&[0.5f32, f32::NAN]), 0.5],
        image_std: [0.25, p.pick(&[0.25f32, 0.0, -1.0, f32::INFINITY]), 0.25],
        max_tiles: p.pick(&[4u32, 1, 12, 100]),
        min_tiles: p.pick(&[1u32, 1, 0, 2]),
        use_thumbnail: p.byte() & 1 == 0,
    };
    let ty = [GgmlType::F32, GgmlType::F32, GgmlType::F16, GgmlType::BF16];
    // norms, biases + position embedding, matrices
    (hp, [p.pick(&ty), p.pick(&ty), p.pick(&ty)])
}

/// The vision tower from hyperparameters and tensor types the input chooses: the file is
/// written, loaded (validated) and, when accepted, run on one tile. Whatever the validator
/// accepts, the graph must build and compute: a ggml abort here is a finding.
#[cfg(feature = "engine")]
pub fn vision_graph(data: &[u8]) {
    use sail::vision::encoder::{EncoderParams, VisionEncoder};
    use sail_format::Category;
    sail::ggml::llama_init(false);
    let (hp, types) = graph_spec(data);
    // a degenerate spec can make the tensor list itself absurd; the writer is not under test
    if hp.n_layer > 8 || hp.image_size > 512 {
        return;
    }
    let path = scratch().join("graph.mmproj.gguf");
    let cats: std::collections::HashMap<String, Category> =
        instances(None, Some(&hp), true).iter().map(|i| (i.gguf.clone(), i.entry().category)).collect();
    let ty = |name: &str, _| match cats.get(name) {
        Some(Category::Norm) => types[0],
        Some(Category::Bias | Category::PosEmbd) => types[1],
        _ => types[2],
    };
    if sail_format::fixture::write_vision(&path, &hp, &ty).is_err() {
        return;
    }
    let params = EncoderParams { n_threads: 1, memory_budget: 64 << 20, device: None };
    let Ok(enc) = VisionEncoder::load(&path, Some(hp.proj_dim), &params) else { return };
    let s = enc.hp.image_size as usize;
    let pixels: Vec<f32> = (0..3 * s * s).map(|i| (data.get(i % data.len().max(1)).copied().unwrap_or(0) as f32 - 128.0) / 64.0).collect();
    let rows = enc.encode(&pixels, 1, params.memory_budget).expect("a validated tower encodes a tile");
    assert_eq!(rows.len() as u64, enc.hp.tokens_per_tile() * enc.hp.proj_dim as u64);
    deep();
}
