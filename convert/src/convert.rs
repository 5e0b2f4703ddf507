//! The conversion itself: check the whole checkpoint against the name table, fix every output
//! tensor's type and offset, then stream tensors one at a time into two temporary files that
//! are renamed into place only when both are complete.

use crate::error::ConvertError;
use crate::hf::HfConfig;
use crate::layout::{check_layout, vision_path_for, Layout};
use crate::safetensors::{Checkpoint, TensorRef};
use crate::tokenizer::Vocab;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sail_format::gguf::{GgufFile, GgufWriter, PlannedTensor, Value};
use sail_format::keys::*;
use sail_format::names::{Dims, Instance};
use sail_format::quant::{Policy, Preset, VisionType};
use sail_format::template as tpl;
use sail_format::GgmlType;
use sail_format::{validate, FilePart};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Options {
    pub input: PathBuf,
    /// The language file, `NAME.gguf`; the vision file goes beside it as `NAME.mmproj.gguf`.
    pub output: PathBuf,
    pub preset: Preset,
    pub vision_type: VisionType,
    /// Quantization threads (0: all cores).
    pub threads: usize,
    pub progress: bool,
}

/// A tensor whose type differs from what the preset asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    pub tensor: String,
    pub wanted: GgmlType,
    pub got: GgmlType,
    pub row: u64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub llm_path: PathBuf,
    pub vision_path: PathBuf,
    pub llm_bytes: u64,
    pub vision_bytes: u64,
    pub tied_output: bool,
    pub n_tensors: usize,
    /// Tensor count per (file, type).
    pub types: BTreeMap<(String, String), usize>,
    pub fallbacks: Vec<Fallback>,
    pub seconds: f64,
}

/// Removes temporary outputs unless the conversion committed them.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn temp_path(final_path: &Path) -> PathBuf {
    let name = final_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    final_path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Values converted per step (16 MiB of f32).
const CHUNK_VALUES: usize = 4 << 20;

/// One output tensor with where its data comes from.
struct Job {
    inst: Instance,
    planned: PlannedTensor,
    sources: Vec<TensorRef>,
}

pub fn convert(opts: &Options, cancel: &AtomicBool) -> Result<Report, ConvertError> {
    let t0 = Instant::now();
    let dir = &opts.input;
    let cfg = HfConfig::load(dir)?;
    let ck = Checkpoint::open(dir)?;
    let llm_path = opts.output.clone();
    let vision_path = vision_path_for(&llm_path);
    check_outputs(dir, &ck, &[&llm_path, &vision_path])?;

    // ---- 1. the checkpoint against the table: every problem at once ----
    let Layout { tied, instances: insts } = check_layout(&cfg, &ck)?;
    let dims = Dims { llm: Some(&cfg.llm), vision: Some(&cfg.vision) };
    // after the layout check: the vocabulary is sized by the embedding rows it has verified
    let vocab = Vocab::load(&dir.join("tokenizer.json"), cfg.llm.n_vocab as usize)?;

    // ---- 2. types and layout of both files ----
    let policy = Policy::new(opts.preset, opts.vision_type);
    let mut fallbacks = Vec::new();
    let mut jobs: [Vec<Job>; 2] = [Vec::new(), Vec::new()];
    for inst in insts {
        let e = inst.entry();
        let ne = dims.shape(e.ne);
        let n_layer = match e.file {
            FilePart::Llm => cfg.llm.n_layer,
            FilePart::Vision => cfg.vision.n_layer,
        } as usize;
        let choice = policy.choose(e, &ne, inst.bid, n_layer);
        if let Some(wanted) = choice.fallback_from {
            fallbacks.push(Fallback { tensor: inst.gguf.clone(), wanted, got: choice.ty, row: ne[0] });
        }
        let sources = inst.hf.iter().map(|h| ck.tensors[h].clone()).collect();
        let planned = PlannedTensor { name: inst.gguf.clone(), ne, ty: choice.ty };
        let idx = if e.file == FilePart::Llm { 0 } else { 1 };
        jobs[idx].push(Job { inst, planned, sources });
    }

    let name =
        dir.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "SAIL-VL2".into());
    let vision_file_name = vision_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();

    // general.architecture first, as llama.cpp's writer orders it.
    let mut llm_kvs = cfg.llm.to_kvs();
    llm_kvs.splice(
        1..1,
        [
            (GENERAL_NAME.to_string(), Value::String(name.clone())),
            (GENERAL_FILE_TYPE.to_string(), Value::U32(opts.preset.llama_ftype())),
            (GENERAL_QUANTIZATION_VERSION.to_string(), Value::U32(2)),
        ],
    );
    llm_kvs.extend(vocab.to_kvs());
    llm_kvs.extend([
        (SAIL_TEMPLATE.into(), Value::String(cfg.template.clone())),
        (SAIL_SYSTEM_PROMPT.into(), Value::String(tpl::DEFAULT_SYSTEM_PROMPT.into())),
        (SAIL_THINK_PROMPT.into(), Value::String(tpl::THINK_PROMPT.into())),
        (SAIL_MMPROJ.into(), Value::String(vision_file_name)),
        (SAIL_TOKEN_IMG_START.into(), Value::U32(vocab.id(tpl::IMG_START))),
        (SAIL_TOKEN_IMG_END.into(), Value::U32(vocab.id(tpl::IMG_END))),
        (SAIL_TOKEN_IMG_CONTEXT.into(), Value::U32(vocab.id(tpl::IMG_CONTEXT))),
        (SAIL_TOKENS_PER_TILE.into(), Value::U32(cfg.vision.tokens_per_tile() as u32)),
        (SAIL_TIED_OUTPUT.into(), Value::Bool(tied)),
    ]);
    let mut vis_kvs = cfg.vision.to_kvs();
    vis_kvs.insert(1, (GENERAL_NAME.into(), Value::String(format!("{name} vision"))));
    vis_kvs.insert(2, (GENERAL_FILE_TYPE.into(), Value::U32(if opts.vision_type == VisionType::F32 { 0 } else { 1 })));

    // ---- 3. stream ----
    let total: u64 = jobs.iter().flatten().flat_map(|j| &j.sources).map(|s| (s.end - s.start) as u64).sum();
    let bar = if opts.progress { ProgressBar::new(total) } else { ProgressBar::hidden() };
    if opts.progress {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| ConvertError::io(&llm_path, std::io::Error::other(e.to_string())))?;

    let temps = TempFiles(vec![temp_path(&llm_path), temp_path(&vision_path)]);
    let mut types = BTreeMap::new();
    let mut sizes = [0u64; 2];
    let [llm_jobs, vis_jobs] = jobs;
    let n_tensors = llm_jobs.len() + vis_jobs.len();
    for (i, (kvs, jobs, tmp)) in [(llm_kvs, llm_jobs, &temps.0[0]), (vis_kvs, vis_jobs, &temps.0[1])].into_iter().enumerate() {
        let label = if i == 0 { "language" } else { "vision" };
        for j in &jobs {
            *types.entry((label.to_string(), j.planned.ty.name().to_string())).or_insert(0) += 1;
        }
        sizes[i] = write_file(tmp, &kvs, jobs, &ck, &pool, &bar, cancel)?;
    }
    bar.finish_and_clear();

    // What was written must pass the checks `sail` runs before loading; otherwise nothing is
    // kept (the temporary files go with `temps`).
    validate::language(&GgufFile::open(&temps.0[0])?)?;
    validate::vision(&GgufFile::open(&temps.0[1])?)?;

    for (tmp, fin) in temps.0.iter().zip([&llm_path, &vision_path]) {
        std::fs::rename(tmp, fin).map_err(|e| ConvertError::io(fin, e))?;
    }
    std::mem::forget(temps);
    Ok(Report {
        llm_path,
        vision_path,
        llm_bytes: sizes[0],
        vision_bytes: sizes[1],
        tied_output: tied,
        n_tensors,
        types,
        fallbacks,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The outputs may not replace a device, FIFO or folder (the final rename would), nor any file
/// the conversion reads.
fn check_outputs(dir: &Path, ck: &Checkpoint, outputs: &[&Path]) -> Result<(), ConvertError> {
    let names = ["config.json", "preprocessor_config.json", "tokenizer.json", "model.safetensors.index.json"];
    let mut inputs: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    inputs.extend(ck.files.iter().map(|f| f.path().to_path_buf()));
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    for out in outputs {
        sail_format::files::check_output(out, &inputs)?;
    }
    Ok(())
}

fn write_file(
    path: &Path,
    kvs: &[(String, Value)],
    jobs: Vec<Job>,
    ck: &Checkpoint,
    pool: &rayon::ThreadPool,
    bar: &ProgressBar,
    cancel: &AtomicBool,
) -> Result<u64, ConvertError> {
    let file = File::create(path).map_err(|e| ConvertError::io(path, e))?;
    let planned = jobs.iter().map(|j| j.planned.clone()).collect();
    let mut w = GgufWriter::start(BufWriter::with_capacity(8 << 20, file), kvs, planned).map_err(|e| ConvertError::io(path, e))?;
    let mut buf: Vec<f32> = Vec::with_capacity(CHUNK_VALUES);
    for j in jobs {
        if cancel.load(Ordering::Relaxed) {
            return Err(ConvertError::Interrupted);
        }
        bar.set_message(j.planned.name.clone());
        // Row chunks of about 16 MiB of f32: memory stays flat whatever the tensor's size.
        // Experts are stacked outermost, so their rows simply follow one another.
        let n0 = j.planned.ne[0] as usize;
        let rows_per_chunk = (CHUNK_VALUES / n0).max(1);
        w.begin_tensor(&j.planned.name).map_err(|e| ConvertError::io(path, e))?;
        for (src, hf) in j.sources.iter().zip(&j.inst.hf) {
            let rows = src.shape.iter().product::<u64>() as usize / n0;
            let (mut nan, mut inf) = (0, 0);
            for row0 in (0..rows).step_by(rows_per_chunk) {
                let n = rows_per_chunk.min(rows - row0);
                let (a, b) = ck.rows_f32(src, n0, row0, n, &mut buf);
                nan += a;
                inf += b;
                if nan + inf == 0 {
                    let data = pool.install(|| sail_ggml::quantize(j.planned.ty, &buf, n0))?;
                    w.write_data(&data).map_err(|e| ConvertError::io(path, e))?;
                }
                ck.release_rows(src, n0, row0, n);
                bar.inc((n * n0 * src.dtype.size()) as u64);
            }
            if nan + inf > 0 {
                return Err(ConvertError::NonFinite { tensor: hf.clone(), file: ck.path(src).to_path_buf(), nan, inf, total: rows * n0 });
            }
        }
        w.end_tensor().map_err(|e| ConvertError::io(path, e))?;
    }
    let (bw, size) = w.finish().map_err(|e| ConvertError::io(path, e))?;
    let file = bw.into_inner().map_err(|e| ConvertError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| ConvertError::io(path, e))?;
    Ok(size)
}

impl Report {
    /// The human summary `sail-convert` prints.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
        s.push_str(&format!(
            "wrote {} ({:.1} MiB) and {} ({:.1} MiB): {} tensors in {:.1} s\n",
            self.llm_path.display(),
            mb(self.llm_bytes),
            self.vision_path.display(),
            mb(self.vision_bytes),
            self.n_tensors,
            self.seconds
        ));
        if self.tied_output {
            s.push_str("lm_head equals embed_tokens: stored once (tied output)\n");
        }
        for ((file, ty), n) in &self.types {
            s.push_str(&format!("  {file:<8} {ty:<5} {n} tensors\n"));
        }
        if !self.fallbacks.is_empty() {
            s.push_str(&format!("{} tensors fell back to another type (rows do not fit the block size):\n", self.fallbacks.len()));
            for f in &self.fallbacks {
                s.push_str(&format!("  {}: {} → {} (rows of {})\n", f.tensor, f.wanted, f.got, f.row));
            }
        }
        s
    }
}
