//! Every metadata key sail writes or reads, named once.
//!
//! Language-model keys are llama.cpp's (`{arch}` is `qwen3` or `qwen3moe`), so stock llama.cpp
//! reads our file; `sail.*` keys carry what only sail needs. Vision keys reuse mtmd's `clip.*`
//! names where the meaning is the same and add `sail.vision.*` for SAIL-specific choices.

pub const GENERAL_ARCHITECTURE: &str = "general.architecture";
pub const GENERAL_NAME: &str = "general.name";
pub const GENERAL_FILE_TYPE: &str = "general.file_type";
pub const GENERAL_QUANTIZATION_VERSION: &str = "general.quantization_version";
pub const GENERAL_ALIGNMENT: &str = "general.alignment";

// ---- language model: `{arch}.` prefix ----
pub const LLM_CONTEXT_LENGTH: &str = "{arch}.context_length";
pub const LLM_EMBEDDING_LENGTH: &str = "{arch}.embedding_length";
pub const LLM_BLOCK_COUNT: &str = "{arch}.block_count";
pub const LLM_FEED_FORWARD_LENGTH: &str = "{arch}.feed_forward_length";
pub const LLM_HEAD_COUNT: &str = "{arch}.attention.head_count";
pub const LLM_HEAD_COUNT_KV: &str = "{arch}.attention.head_count_kv";
pub const LLM_KEY_LENGTH: &str = "{arch}.attention.key_length";
pub const LLM_VALUE_LENGTH: &str = "{arch}.attention.value_length";
pub const LLM_RMS_EPS: &str = "{arch}.attention.layer_norm_rms_epsilon";
pub const LLM_ROPE_FREQ_BASE: &str = "{arch}.rope.freq_base";
pub const LLM_ROPE_DIMENSION_COUNT: &str = "{arch}.rope.dimension_count";
pub const LLM_VOCAB_SIZE: &str = "{arch}.vocab_size";
pub const LLM_EXPERT_COUNT: &str = "{arch}.expert_count";
pub const LLM_EXPERT_USED_COUNT: &str = "{arch}.expert_used_count";
pub const LLM_EXPERT_FF_LENGTH: &str = "{arch}.expert_feed_forward_length";

/// Substitutes the architecture into an `{arch}.` key.
pub fn arch_key(pattern: &str, arch: &str) -> String {
    pattern.replace("{arch}", arch)
}

// ---- tokenizer (llama.cpp names) ----
pub const TOK_MODEL: &str = "tokenizer.ggml.model";
pub const TOK_PRE: &str = "tokenizer.ggml.pre";
pub const TOK_TOKENS: &str = "tokenizer.ggml.tokens";
pub const TOK_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const TOK_MERGES: &str = "tokenizer.ggml.merges";
pub const TOK_BOS_ID: &str = "tokenizer.ggml.bos_token_id";
pub const TOK_EOS_ID: &str = "tokenizer.ggml.eos_token_id";
pub const TOK_PAD_ID: &str = "tokenizer.ggml.padding_token_id";
pub const TOK_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
pub const TOK_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
pub const TOK_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

// ---- sail keys in the language file ----
pub const SAIL_TEMPLATE: &str = "sail.template";
pub const SAIL_SYSTEM_PROMPT: &str = "sail.system_prompt";
pub const SAIL_THINK_PROMPT: &str = "sail.think_prompt";
pub const SAIL_MMPROJ: &str = "sail.mmproj";
pub const SAIL_TOKEN_IMG_START: &str = "sail.token.img_start";
pub const SAIL_TOKEN_IMG_END: &str = "sail.token.img_end";
pub const SAIL_TOKEN_IMG_CONTEXT: &str = "sail.token.img_context";
pub const SAIL_TOKENS_PER_TILE: &str = "sail.tokens_per_tile";
pub const SAIL_TIED_OUTPUT: &str = "sail.tied_output";

// ---- vision file ----
pub const CLIP_PROJECTOR_TYPE: &str = "clip.projector_type";
pub const CLIP_HAS_VISION: &str = "clip.has_vision_encoder";
pub const CLIP_IMAGE_SIZE: &str = "clip.vision.image_size";
pub const CLIP_PATCH_SIZE: &str = "clip.vision.patch_size";
pub const CLIP_EMBEDDING_LENGTH: &str = "clip.vision.embedding_length";
pub const CLIP_FEED_FORWARD_LENGTH: &str = "clip.vision.feed_forward_length";
pub const CLIP_BLOCK_COUNT: &str = "clip.vision.block_count";
pub const CLIP_HEAD_COUNT: &str = "clip.vision.attention.head_count";
pub const CLIP_EPS: &str = "clip.vision.attention.layer_norm_epsilon";
pub const CLIP_PROJECTION_DIM: &str = "clip.vision.projection_dim";
pub const CLIP_IMAGE_MEAN: &str = "clip.vision.image_mean";
pub const CLIP_IMAGE_STD: &str = "clip.vision.image_std";
pub const CLIP_SCALE_FACTOR: &str = "clip.vision.projector.scale_factor";
pub const SAIL_V_CHANNELS: &str = "sail.vision.num_channels";
pub const SAIL_V_SELECT_LAYER: &str = "sail.vision.select_layer";
pub const SAIL_V_PS_VERSION: &str = "sail.vision.ps_version";
pub const SAIL_V_DOWNSAMPLE_RATIO: &str = "sail.vision.downsample_ratio";
pub const SAIL_V_PROJ_LN_EPS: &str = "sail.vision.projector.layer_norm_epsilon";
pub const SAIL_V_MAX_TILES: &str = "sail.vision.max_dynamic_patch";
pub const SAIL_V_MIN_TILES: &str = "sail.vision.min_dynamic_patch";
pub const SAIL_V_USE_THUMBNAIL: &str = "sail.vision.use_thumbnail";

/// `general.architecture` of the vision file and its `clip.projector_type`. mtmd will refuse
/// the unknown projector type by name instead of running a graph that does not fit SAIL-ViT.
pub const VISION_ARCH: &str = "clip";
pub const VISION_PROJECTOR_TYPE: &str = "sailvl2";
