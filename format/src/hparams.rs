//! Hyperparameters as typed structs, written to and read from GGUF metadata.
//!
//! Reading collects every missing or mistyped key before failing, so a user with a broken
//! file learns everything that is wrong at once; shape checks use these values at load time,
//! before any compute.

use super::keys::*;
use crate::gguf::{GgufFile, Value};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HparamsError {
    #[error("{file}: missing or mistyped metadata: {}", .problems.join("; "))]
    Keys { file: PathBuf, problems: Vec<String> },
    #[error("{file}: {key} = {value}: {why}")]
    Invalid { file: PathBuf, key: String, value: String, why: String },
}

/// The language-model architectures llama.cpp runs for SAIL-VL2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmArch {
    Qwen3,
    Qwen3Moe,
}

impl LlmArch {
    pub fn gguf_name(self) -> &'static str {
        match self {
            LlmArch::Qwen3 => "qwen3",
            LlmArch::Qwen3Moe => "qwen3moe",
        }
    }
    pub fn from_gguf_name(s: &str) -> Option<LlmArch> {
        match s {
            "qwen3" => Some(LlmArch::Qwen3),
            "qwen3moe" => Some(LlmArch::Qwen3Moe),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoeHparams {
    pub n_expert: u32,
    pub n_expert_used: u32,
    pub n_ff_exp: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlmHparams {
    pub arch: LlmArch,
    pub n_vocab: u32,
    pub n_embd: u32,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    /// Dense FFN width (0 for an all-MoE model).
    pub n_ff: u32,
    pub n_ctx_train: u32,
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub moe: Option<MoeHparams>,
}

/// Pixel-shuffle channel order (spec §1.2); v2 is what SAIL-VL2 ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsVersion {
    V1,
    V2,
}

impl PsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            PsVersion::V1 => "v1",
            PsVersion::V2 => "v2",
        }
    }
    pub fn parse(s: &str) -> Option<PsVersion> {
        match s {
            "v1" => Some(PsVersion::V1),
            "v2" => Some(PsVersion::V2),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VisionHparams {
    pub image_size: u32,
    pub patch_size: u32,
    pub n_channels: u32,
    pub n_embd: u32,
    pub n_ff: u32,
    pub n_layer: u32,
    pub n_head: u32,
    /// RMSNorm eps of the ViT (patch norm, blocks, post-trunk norm).
    pub rms_eps: f32,
    /// −1: post-trunk-normed output; other values index raw block outputs (spec §1.1).
    pub select_layer: i32,
    pub ps_version: PsVersion,
    pub downsample_ratio: f32,
    /// LayerNorm eps of `mlp1.0`.
    pub proj_ln_eps: f32,
    /// Projector output width = the LLM's hidden size.
    pub proj_dim: u32,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub max_tiles: u32,
    pub min_tiles: u32,
    pub use_thumbnail: bool,
}

impl VisionHparams {
    // Derived sizes are computed in u64 from u32 fields and never divide by zero, so a hostile
    // file cannot make them wrap or panic before `validate` rejects it.

    /// Patches per tile side.
    pub fn grid(&self) -> u32 {
        self.image_size.checked_div(self.patch_size).unwrap_or(0)
    }
    /// Patches per tile.
    pub fn n_positions(&self) -> u64 {
        self.grid() as u64 * self.grid() as u64
    }
    /// Pixel-shuffle factor (2 for a ratio of 0.5); 0 when the ratio is not positive.
    pub fn scale(&self) -> u32 {
        let s = 1.0 / self.downsample_ratio as f64;
        if s.is_finite() && (0.5..65536.0).contains(&s) {
            s.round() as u32
        } else {
            0
        }
    }
    /// Projector input width: ViT hidden · scale².
    pub fn proj_in(&self) -> u64 {
        self.n_embd as u64 * self.scale() as u64 * self.scale() as u64
    }
    /// LLM tokens per tile (256 for 448/14 with a 2×2 shuffle).
    pub fn tokens_per_tile(&self) -> u64 {
        self.n_positions().checked_div(self.scale() as u64 * self.scale() as u64).unwrap_or(0)
    }
    pub fn head_dim(&self) -> u32 {
        self.n_embd.checked_div(self.n_head).unwrap_or(0)
    }

    /// Checks the relations the graph relies on; the converter and the loader both call it.
    pub fn validate(&self) -> Result<(), String> {
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(format!("image_size {} is not a multiple of patch_size {}", self.image_size, self.patch_size));
        }
        let s = self.scale();
        if s == 0 || (1.0 / s as f32 - self.downsample_ratio).abs() > 1e-6 || !self.grid().is_multiple_of(s) {
            return Err(format!(
                "downsample_ratio {} does not divide the {}×{} patch grid",
                self.downsample_ratio,
                self.grid(),
                self.grid()
            ));
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(format!("hidden size {} is not divisible by {} heads", self.n_embd, self.n_head));
        }
        // in i64: a block count above i32::MAX must not wrap into a negative bound
        let (sel, n) = (self.select_layer as i64, self.n_layer as i64);
        if sel == 0 || sel < -n || sel >= n {
            return Err(format!("select_layer {} is outside the {} blocks", self.select_layer, self.n_layer));
        }
        if self.min_tiles == 0 || self.max_tiles < self.min_tiles {
            return Err(format!("tile range {}..={} is empty", self.min_tiles, self.max_tiles));
        }
        Ok(())
    }
}

/// Collects key problems so they can be reported together.
struct KeyReader<'a> {
    file: &'a GgufFile,
    problems: Vec<String>,
}

impl<'a> KeyReader<'a> {
    fn raw(&mut self, key: &str) -> Option<&'a Value> {
        let v = self.file.get(key);
        if v.is_none() {
            self.problems.push(format!("{key} is missing"));
        }
        v
    }
    fn u32(&mut self, key: &str) -> u32 {
        match self.raw(key).map(|v| v.as_i64().and_then(|i| u32::try_from(i).ok())) {
            Some(Some(v)) => v,
            Some(None) => {
                self.problems.push(format!("{key} is not an unsigned integer"));
                0
            }
            None => 0,
        }
    }
    fn i32(&mut self, key: &str) -> i32 {
        match self.raw(key).map(|v| v.as_i64().and_then(|i| i32::try_from(i).ok())) {
            Some(Some(v)) => v,
            Some(None) => {
                self.problems.push(format!("{key} is not an integer"));
                0
            }
            None => 0,
        }
    }
    fn f32(&mut self, key: &str) -> f32 {
        match self.raw(key).map(|v| v.as_f64()) {
            Some(Some(v)) => v as f32,
            Some(None) => {
                self.problems.push(format!("{key} is not a number"));
                0.0
            }
            None => 0.0,
        }
    }
    fn bool(&mut self, key: &str) -> bool {
        match self.raw(key).map(|v| v.as_bool()) {
            Some(Some(v)) => v,
            Some(None) => {
                self.problems.push(format!("{key} is not a bool"));
                false
            }
            None => false,
        }
    }
    fn string(&mut self, key: &str) -> String {
        match self.raw(key).map(|v| v.as_str()) {
            Some(Some(v)) => v.to_string(),
            Some(None) => {
                self.problems.push(format!("{key} is not a string"));
                String::new()
            }
            None => String::new(),
        }
    }
    fn f32x3(&mut self, key: &str) -> [f32; 3] {
        match self.raw(key).map(|v| v.as_f32_array()) {
            Some(Some(v)) if v.len() == 3 => [v[0], v[1], v[2]],
            Some(_) => {
                self.problems.push(format!("{key} is not an array of 3 floats"));
                [0.0; 3]
            }
            None => [0.0; 3],
        }
    }
    fn finish(self) -> Result<(), HparamsError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(HparamsError::Keys { file: self.file.path().to_path_buf(), problems: self.problems })
        }
    }
}

fn invalid(f: &GgufFile, key: &str, value: impl ToString, why: impl ToString) -> HparamsError {
    HparamsError::Invalid { file: f.path().to_path_buf(), key: key.into(), value: value.to_string(), why: why.to_string() }
}

impl LlmHparams {
    /// Metadata for the language file (llama.cpp keys).
    pub fn to_kvs(&self) -> Vec<(String, Value)> {
        let a = self.arch.gguf_name();
        let k = |p: &str| arch_key(p, a);
        let mut kv = vec![
            (GENERAL_ARCHITECTURE.to_string(), Value::String(a.into())),
            (k(LLM_CONTEXT_LENGTH), Value::U32(self.n_ctx_train)),
            (k(LLM_EMBEDDING_LENGTH), Value::U32(self.n_embd)),
            (k(LLM_BLOCK_COUNT), Value::U32(self.n_layer)),
            (k(LLM_FEED_FORWARD_LENGTH), Value::U32(self.n_ff)),
            (k(LLM_HEAD_COUNT), Value::U32(self.n_head)),
            (k(LLM_HEAD_COUNT_KV), Value::U32(self.n_head_kv)),
            (k(LLM_KEY_LENGTH), Value::U32(self.head_dim)),
            (k(LLM_VALUE_LENGTH), Value::U32(self.head_dim)),
            (k(LLM_RMS_EPS), Value::F32(self.rms_eps)),
            (k(LLM_ROPE_FREQ_BASE), Value::F32(self.rope_theta)),
            (k(LLM_VOCAB_SIZE), Value::U32(self.n_vocab)),
        ];
        if let Some(m) = self.moe {
            kv.push((k(LLM_EXPERT_COUNT), Value::U32(m.n_expert)));
            kv.push((k(LLM_EXPERT_USED_COUNT), Value::U32(m.n_expert_used)));
            kv.push((k(LLM_EXPERT_FF_LENGTH), Value::U32(m.n_ff_exp)));
        }
        kv
    }

    /// Reads the language file's hyperparameters, reporting every missing key at once.
    pub fn from_gguf(f: &GgufFile) -> Result<LlmHparams, HparamsError> {
        let mut r = KeyReader { file: f, problems: vec![] };
        let arch_name = r.string(GENERAL_ARCHITECTURE);
        let arch = match LlmArch::from_gguf_name(&arch_name) {
            Some(a) => a,
            // missing or mistyped: reported as such; present but another (or an empty) name:
            // named as the value it is
            None if !r.problems.is_empty() => return Err(HparamsError::Keys { file: f.path().to_path_buf(), problems: r.problems }),
            None => return Err(invalid(f, GENERAL_ARCHITECTURE, format!("{arch_name:?}"), "sail runs qwen3 and qwen3moe language models")),
        };
        let k = |p: &str| arch_key(p, arch.gguf_name());
        let moe = (arch == LlmArch::Qwen3Moe).then(|| MoeHparams {
            n_expert: r.u32(&k(LLM_EXPERT_COUNT)),
            n_expert_used: r.u32(&k(LLM_EXPERT_USED_COUNT)),
            n_ff_exp: r.u32(&k(LLM_EXPERT_FF_LENGTH)),
        });
        let n_embd = r.u32(&k(LLM_EMBEDDING_LENGTH));
        let n_head = r.u32(&k(LLM_HEAD_COUNT));
        let head_dim = match f.get(&k(LLM_KEY_LENGTH)) {
            Some(_) => r.u32(&k(LLM_KEY_LENGTH)),
            None => n_embd.checked_div(n_head).unwrap_or(0),
        };
        let n_vocab = match f.get(&k(LLM_VOCAB_SIZE)) {
            Some(_) => r.u32(&k(LLM_VOCAB_SIZE)),
            None => f.get(TOK_TOKENS).and_then(|v| v.array_len()).and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        };
        let h = LlmHparams {
            arch,
            n_vocab,
            n_embd,
            n_layer: r.u32(&k(LLM_BLOCK_COUNT)),
            n_head,
            n_head_kv: r.u32(&k(LLM_HEAD_COUNT_KV)),
            head_dim,
            n_ff: r.u32(&k(LLM_FEED_FORWARD_LENGTH)),
            n_ctx_train: r.u32(&k(LLM_CONTEXT_LENGTH)),
            rope_theta: r.f32(&k(LLM_ROPE_FREQ_BASE)),
            rms_eps: r.f32(&k(LLM_RMS_EPS)),
            moe,
        };
        r.finish()?;
        Ok(h)
    }
}

impl VisionHparams {
    /// Metadata for the vision file.
    pub fn to_kvs(&self) -> Vec<(String, Value)> {
        vec![
            (GENERAL_ARCHITECTURE.into(), Value::String(VISION_ARCH.into())),
            (CLIP_PROJECTOR_TYPE.into(), Value::String(VISION_PROJECTOR_TYPE.into())),
            (CLIP_HAS_VISION.into(), Value::Bool(true)),
            (CLIP_IMAGE_SIZE.into(), Value::U32(self.image_size)),
            (CLIP_PATCH_SIZE.into(), Value::U32(self.patch_size)),
            (CLIP_EMBEDDING_LENGTH.into(), Value::U32(self.n_embd)),
            (CLIP_FEED_FORWARD_LENGTH.into(), Value::U32(self.n_ff)),
            (CLIP_BLOCK_COUNT.into(), Value::U32(self.n_layer)),
            (CLIP_HEAD_COUNT.into(), Value::U32(self.n_head)),
            (CLIP_EPS.into(), Value::F32(self.rms_eps)),
            (CLIP_PROJECTION_DIM.into(), Value::U32(self.proj_dim)),
            (CLIP_IMAGE_MEAN.into(), Value::ArrF32(self.image_mean.to_vec())),
            (CLIP_IMAGE_STD.into(), Value::ArrF32(self.image_std.to_vec())),
            (CLIP_SCALE_FACTOR.into(), Value::U32(self.scale())),
            (SAIL_V_CHANNELS.into(), Value::U32(self.n_channels)),
            (SAIL_V_SELECT_LAYER.into(), Value::I32(self.select_layer)),
            (SAIL_V_PS_VERSION.into(), Value::String(self.ps_version.as_str().into())),
            (SAIL_V_DOWNSAMPLE_RATIO.into(), Value::F32(self.downsample_ratio)),
            (SAIL_V_PROJ_LN_EPS.into(), Value::F32(self.proj_ln_eps)),
            (SAIL_V_MAX_TILES.into(), Value::U32(self.max_tiles)),
            (SAIL_V_MIN_TILES.into(), Value::U32(self.min_tiles)),
            (SAIL_V_USE_THUMBNAIL.into(), Value::Bool(self.use_thumbnail)),
        ]
    }

    /// Reads the vision file's hyperparameters, reporting every missing key at once.
    pub fn from_gguf(f: &GgufFile) -> Result<VisionHparams, HparamsError> {
        let mut r = KeyReader { file: f, problems: vec![] };
        let ptype = r.string(CLIP_PROJECTOR_TYPE);
        let ps = r.string(SAIL_V_PS_VERSION);
        let h = VisionHparams {
            image_size: r.u32(CLIP_IMAGE_SIZE),
            patch_size: r.u32(CLIP_PATCH_SIZE),
            n_channels: r.u32(SAIL_V_CHANNELS),
            n_embd: r.u32(CLIP_EMBEDDING_LENGTH),
            n_ff: r.u32(CLIP_FEED_FORWARD_LENGTH),
            n_layer: r.u32(CLIP_BLOCK_COUNT),
            n_head: r.u32(CLIP_HEAD_COUNT),
            rms_eps: r.f32(CLIP_EPS),
            select_layer: r.i32(SAIL_V_SELECT_LAYER),
            ps_version: PsVersion::V2,
            downsample_ratio: r.f32(SAIL_V_DOWNSAMPLE_RATIO),
            proj_ln_eps: r.f32(SAIL_V_PROJ_LN_EPS),
            proj_dim: r.u32(CLIP_PROJECTION_DIM),
            image_mean: r.f32x3(CLIP_IMAGE_MEAN),
            image_std: r.f32x3(CLIP_IMAGE_STD),
            max_tiles: r.u32(SAIL_V_MAX_TILES),
            min_tiles: r.u32(SAIL_V_MIN_TILES),
            use_thumbnail: r.bool(SAIL_V_USE_THUMBNAIL),
        };
        r.finish()?;
        if ptype != VISION_PROJECTOR_TYPE {
            return Err(invalid(
                f,
                CLIP_PROJECTOR_TYPE,
                &ptype,
                format!("expected {VISION_PROJECTOR_TYPE:?} (a sail-convert vision file)"),
            ));
        }
        let ps_version = PsVersion::parse(&ps).ok_or_else(|| invalid(f, SAIL_V_PS_VERSION, &ps, "expected v1 or v2"))?;
        let h = VisionHparams { ps_version, ..h };
        h.validate().map_err(|why| invalid(f, "vision hyperparameters", "", why))?;
        Ok(h)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn tiny_llm() -> LlmHparams {
        LlmHparams {
            arch: LlmArch::Qwen3,
            n_vocab: 151936,
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 16,
            n_ff: 128,
            n_ctx_train: 40960,
            rope_theta: 1e6,
            rms_eps: 1e-6,
            moe: None,
        }
    }

    pub fn tiny_moe() -> LlmHparams {
        LlmHparams { arch: LlmArch::Qwen3Moe, moe: Some(MoeHparams { n_expert: 4, n_expert_used: 2, n_ff_exp: 32 }), ..tiny_llm() }
    }

    pub fn tiny_vision() -> VisionHparams {
        VisionHparams {
            image_size: 112,
            patch_size: 14,
            n_channels: 3,
            n_embd: 64,
            n_ff: 128,
            n_layer: 2,
            n_head: 4,
            rms_eps: 1e-5,
            select_layer: -1,
            ps_version: PsVersion::V2,
            downsample_ratio: 0.5,
            proj_ln_eps: 1e-5,
            proj_dim: 64,
            image_mean: [0.485, 0.456, 0.406],
            image_std: [0.229, 0.224, 0.225],
            max_tiles: 10,
            min_tiles: 1,
            use_thumbnail: true,
        }
    }

    #[test]
    fn derived_vision_sizes_match_the_2b() {
        let v = VisionHparams { image_size: 448, n_embd: 1536, ..tiny_vision() };
        assert_eq!(v.n_positions(), 1024);
        assert_eq!(v.tokens_per_tile(), 256);
        assert_eq!(v.proj_in(), 6144);
        assert!(v.validate().is_ok());
        assert!(VisionHparams { select_layer: 2, ..tiny_vision() }.validate().is_err());
        assert!(VisionHparams { select_layer: -2, ..tiny_vision() }.validate().is_ok());
        assert!(VisionHparams { image_size: 100, ..tiny_vision() }.validate().is_err());
    }

    /// Issue #11 item 12: `-(n_layer as i32)` wrapped for 2^31 blocks, so select_layer −1 was
    /// reported "outside the 2147483648 blocks".
    #[test]
    fn select_layer_bounds_do_not_wrap() {
        assert!(VisionHparams { n_layer: 1 << 31, select_layer: -1, ..tiny_vision() }.validate().is_ok());
        assert!(VisionHparams { n_layer: u32::MAX, select_layer: i32::MIN, ..tiny_vision() }.validate().is_ok());
        let e = VisionHparams { n_layer: 3, select_layer: i32::MIN, ..tiny_vision() }.validate().unwrap_err();
        assert!(e.contains("-2147483648 is outside the 3 blocks"), "{e}");
    }
}
