/*
 * sail.h - C interface to sail, the on-device runtime for SAIL-VL2 vision-language models.
 *
 * Link with the static library (see ports/capi/README.md for the exact lines):
 *
 *     cc -O2 app.c -I include libsail.a -lgomp -lstdc++ -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
 *
 * or with the shared library: cc -O2 app.c -I include -L DIR -lsail
 *
 * USAGE
 * -----
 *     sail_status st;
 *     struct sail_model_params mp = sail_model_default_params();
 *     sail_model *model = sail_model_load("sail-2b.gguf", mp, &st);  // finds sail-2b.mmproj.gguf
 *     if (!model) { fprintf(stderr, "%s: %s\n", sail_status_string(st), sail_last_error_message()); return 1; }
 *
 *     sail_session *s = sail_session_new(model, sail_session_default_params(), &st);
 *     st = sail_session_add_image_file(s, "photo.jpg");        // or sail_session_add_image_rgb()
 *
 *     struct sail_generate_params gp = sail_generate_default_params();
 *     gp.n_predict = 128;
 *     st = sail_session_generate(s, "Describe this image.", &gp, on_token, NULL);
 *     //   bool on_token(int32_t id, const char *piece, void *user) { fputs(piece, stdout); return true; }
 *
 *     st = sail_session_generate(s, "And the colours?", &gp, on_token, NULL);  // next turn, same cache
 *     sail_session_reset(s);                                      // new conversation
 *     sail_session_free(s);
 *     sail_model_free(model);
 *
 * Images added to a session are placed before the next prompt's text, or at its own "<image>"
 * markers (one marker per queued image). They are consumed by that sail_session_generate call.
 *
 * IMAGE CACHE
 * -----------
 * The projector rows of every encoded image are kept per model (cache_memory_bytes) and, with
 * cache_dir, on disk, keyed by the image's bytes (or RGB pixels), the tiling settings and the
 * vision file/type/device. Adding the same image again - in another session, or another process
 * with the same cache_dir - skips decoding, tiling and encoding (n_tiles_encoded == 0), and gives
 * bit-identical rows. Disk entries are checked (key, shape, checksum) before use; a bad one is
 * removed and recomputed.
 *
 * THREADING
 * ---------
 * - A sail_model (weights) is immutable after loading and may be used from any number of threads
 *   at once: every thread may call sail_session_new() on the same model concurrently, and the
 *   sessions made from it may generate concurrently. (Vision encoding of images takes turns
 *   between sessions of one model; the language model runs fully in parallel.)
 * - A sail_session (KV cache, queued images, last result) belongs to one thread at a time. It
 *   may move between threads. A call on a session that another call is using at that moment -
 *   from another thread, or from inside that session's own token callback - is refused with
 *   SAIL_ERR_BUSY (getters return 0 / NULL); it never corrupts the session. Freeing a session
 *   while another thread uses it is undefined behaviour.
 * - sail_last_error_message() is per thread.
 * - Process-wide: llama.cpp's global state is initialised on the first sail_model_load(); the
 *   `verbose` flag of the latest load decides whether llama.cpp/ggml logs go to stderr.
 *
 * OWNERSHIP AND LIFETIME
 * ----------------------
 * - sail_model_load() returns a model handle that the caller frees with sail_model_free().
 * - sail_session_new() returns a session handle that the caller frees with sail_session_free().
 *   A session holds its own reference to the model's weights. sail_model_free() drops only the
 *   caller's reference: sessions that are still alive keep working, and the weights are released
 *   when the last of the model handle and its sessions is freed. After sail_model_free() the
 *   model handle itself must not be used again (not even for sail_session_new()).
 * - Freeing NULL is a no-op. Freeing a handle twice, or using it after freeing, is undefined
 *   behaviour (C cannot detect it in general).
 * - Every string and buffer passed in is only read during the call and copied where needed;
 *   the caller keeps ownership (params structs' strings included).
 * - Strings returned by the library are owned by it: sail_status_string() returns static text;
 *   sail_last_error_message() is valid until the next failing sail_* call on the same thread;
 *   sail_session_last_text() is valid until the next generate/reset/free of that session; the
 *   `piece` passed to a token callback is valid only during that callback.
 *
 * RPC SERVERS
 * -----------
 * sail_model_params.rpc_servers pools the devices of `sail rpc-server` processes (ggml's RPC
 * backend; no authentication, no encryption: keep them on loopback or behind an SSH tunnel /
 * WireGuard). Each server is checked (connect and protocol hello, 5 s timeouts each) before ggml
 * uses it: a bad "HOST:PORT" gives SAIL_ERR_INVALID_ARGUMENT, an unreachable server or another
 * protocol version SAIL_ERR_RPC, naming the server. Registration is process-wide and happens
 * once per server. Put layers there with n_gpu_layers (-1: all).
 * LIMIT: ggml's RPC client cannot report a connection that breaks later (server killed, host
 * gone: detected within ~11 s through TCP keepalive on Linux): it aborts the process (SIGABRT),
 * and no sail_* call can return an error for it. A host process that must survive that should
 * keep sail in a child process. Writes to a closed connection raise SIGPIPE unless the host
 * ignores it (Rust programs do; C programs: signal(SIGPIPE, SIG_IGN)).
 *
 * ERRORS
 * ------
 * Functions return a sail_status (SAIL_OK = 0) or, for constructors, NULL plus the status in
 * `*err` (err may be NULL). NULL handles and NULL required pointers give
 * SAIL_ERR_INVALID_ARGUMENT. Every failure also stores a message for sail_last_error_message().
 * No Rust panic ever crosses this interface: an internal panic becomes SAIL_ERR_INTERNAL (a
 * session whose call panicked answers SAIL_ERR_INTERNAL until sail_session_reset()). No C++
 * exception from llama.cpp or ggml crosses it either: such an exception becomes
 * SAIL_ERR_GENERATION_FAILED (or SAIL_ERR_BAD_MODEL while loading) with its message.
 *
 * HOSTILE INPUT
 * -------------
 * Model files, images, prompts and parameter values may come from anyone. Model files are opened
 * without blocking (only regular files: a FIFO or device is refused) and validated completely
 * before llama.cpp or ggml sees them; a file that does not fit gives SAIL_ERR_BAD_MODEL with a
 * message naming the key or tensor. Images are checked from their header and decoded under the
 * session's max_pixels with fallible allocation. Prompt and system text never become control or
 * image tokens unless parse_special is set. Out-of-range values give SAIL_ERR_INVALID_ARGUMENT
 * (e.g. n_threads outside 0..SAIL_MAX_THREADS, repeat_last_n outside 0..65536) or
 * SAIL_ERR_CONTEXT_FULL (n_predict beyond the context).
 *
 * WHAT STAYS UNDEFINED
 * --------------------
 * C cannot check these, so they remain undefined behaviour: freeing a handle twice or using it
 * after freeing; a string that is not NUL-terminated or a buffer shorter than the length passed;
 * a params struct or handle pointer that does not point to what its type says; a token callback
 * that does not return normally (longjmp, a C++ exception thrown through sail, ending its
 * thread); calling sail from a signal handler; freeing a session while another thread is inside
 * a call on it; truncating or rewriting a model file while it is loaded (it is memory-mapped:
 * the process gets SIGBUS); replacing a model file between sail's validation and llama.cpp's own
 * open of it (a race only someone with write access to that folder can run).
 */
#ifndef SAIL_H
#define SAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. Values are stable; new codes may be added. */
typedef int32_t sail_status;
enum sail_status_code {
    SAIL_OK = 0,
    SAIL_ERR_INVALID_ARGUMENT = 1, /* NULL handle/pointer, bad value, non-UTF-8 text, buffer too short */
    SAIL_ERR_FILE_NOT_FOUND = 2,   /* model, vision file or image path does not exist */
    SAIL_ERR_BAD_MODEL = 3,        /* not a GGUF, not a sail model, mismatched or corrupt files */
    SAIL_ERR_NO_VISION = 4,        /* an image was given to a model loaded without a vision file */
    SAIL_ERR_BAD_IMAGE = 5,        /* undecodable, unsupported, empty or over the pixel budget */
    SAIL_ERR_CONTEXT_FULL = 6,     /* prompt + images + n_predict do not fit the context */
    SAIL_ERR_GENERATION_FAILED = 7,/* llama.cpp/ggml failed while encoding, decoding or allocating */
    SAIL_ERR_BUSY = 8,             /* the session is in use by another call right now */
    SAIL_ERR_INTERNAL = 9,         /* a bug: an internal panic was caught */
    SAIL_ERR_RPC = 10              /* an RPC server did not answer, or speaks another protocol version */
};

/* Limits of parameter values. */
enum sail_limits {
    SAIL_MAX_THREADS = 512 /* most CPU threads (ggml's limit) */
};

/* KV cache element type (sail_session_params.kv_type). */
enum sail_kv_type {
    SAIL_KV_AUTO = 0, /* f32 for an f32 model file (exact parity), else f16; as the `sail` CLI */
    SAIL_KV_F16 = 1,
    SAIL_KV_F32 = 2
};

/* Why the last generation ended (sail_generation_info.stop_reason). */
enum sail_stop_reason {
    SAIL_STOP_NONE = 0,     /* nothing generated yet */
    SAIL_STOP_EOS = 1,      /* the model ended its reply (<|im_end|>) */
    SAIL_STOP_LENGTH = 2,   /* n_predict tokens were generated */
    SAIL_STOP_CALLBACK = 3  /* the token callback returned false */
};

/* Opaque handles. */
typedef struct sail_model sail_model;     /* weights: shareable across threads */
typedef struct sail_session sail_session; /* KV cache + images: one thread at a time */

struct sail_model_params {
    const char *mmproj_path;   /* vision file; NULL: the one the model file names, beside it */
    const char *vision_device; /* ggml device for the vision tower ("Vulkan0", "CUDA0"); NULL or "CPU": CPU */
    int32_t n_threads;         /* CPU threads, 1..SAIL_MAX_THREADS; 0: all cores (at most SAIL_MAX_THREADS) */
    int32_t n_gpu_layers;      /* language-model layers on the GPU backend; 0: none, -1: all */
    bool use_mmap;             /* map the model file instead of reading it (default true) */
    bool verbose;              /* llama.cpp/ggml log to stderr (default false; process-wide) */
    const char *rpc_servers;   /* "HOST:PORT[,HOST:PORT...]": pool the devices of these `sail rpc-server`s
                                  (named RPC0, RPC1, ... in order; usable as vision_device); NULL: none.
                                  See RPC SERVERS below */
    const float *tensor_split; /* share of the offloaded layers per offload device (llama.cpp's
                                  order: RPC devices first, then GPUs); NULL: by free memory */
    int32_t n_tensor_split;    /* entries in tensor_split (0 with NULL) */
    const char *cache_dir;     /* image embedding cache folder (created if missing); NULL: memory only */
    uint64_t cache_disk_bytes; /* byte cap of cache_dir, least recently used entries removed (default 1 GiB) */
    uint64_t cache_memory_bytes; /* byte cap of the model's in-memory image cache; 0: off (default 128 MiB) */
    bool repack;               /* let the CPU backend repack quantized weights: faster decode, more
                                  anonymous memory; false keeps every weight in the page cache (default true) */
};

struct sail_session_params {
    const char *system_prompt; /* NULL: the model's default system prompt (copied) */
    uint64_t max_pixels;       /* refuse larger images (checked before decoding); 0: 1<<26 */
    uint32_t n_ctx;            /* context positions; 0: what the first request needs */
    uint32_t n_batch;          /* prompt batch size; 0: 512 */
    int32_t n_threads;         /* 1..SAIL_MAX_THREADS; 0: the model's thread count */
    int32_t max_tiles;         /* tiles per image; 0: the model's max_dynamic_patch; 1: one tile, no thumbnail */
    int32_t kv_type;           /* enum sail_kv_type; default SAIL_KV_AUTO */
    bool parse_special;        /* false (default): prompt and system text stay text, so a typed
                                  "<|im_end|>" cannot end a turn; true: the reference's parsing */
};

struct sail_generate_params {
    int32_t n_predict;      /* new tokens at most (default 512) */
    float temperature;      /* 0: greedy (default) */
    int32_t top_k;          /* 0: off */
    float top_p;            /* 1: off; must be in (0, 1] */
    float min_p;            /* 0: off; must be in [0, 1] */
    float repeat_penalty;   /* 1: off; must be > 0 */
    int32_t repeat_last_n;  /* window of the repeat penalty, 0..65536 (default 64) */
    uint32_t seed;          /* sampling seed (default 0) */
    bool ignore_eos;        /* keep generating past <|im_end|> until n_predict (default false) */
    bool think;             /* ask Thinking variants for <think>...</think> reasoning (default false) */
};

/* What the last sail_session_generate() of a session produced. */
struct sail_generation_info {
    int32_t n_tokens;        /* generated token ids (those the callback saw with id >= 0) */
    int32_t n_prompt_tokens; /* this turn's prompt ids, image placeholders included */
    int32_t n_image_tokens;
    int32_t n_tiles;
    int32_t stop_reason;     /* enum sail_stop_reason */
    int32_t n_past;          /* context positions in use after the turn */
    double vision_ms;
    double prefill_ms;
    double decode_ms;
    int32_t n_tiles_encoded; /* tiles this turn encoded; images found in the image cache need none */
};

/*
 * Called once per generated token, in order, on the thread that called sail_session_generate().
 * `token` is the id; `piece` is its text as complete UTF-8 characters, NUL-terminated (may be ""
 * while a multi-byte character is still incomplete; U+0000 characters are dropped). After the
 * last token, leftover bytes that never completed a character arrive once more with token == -1
 * (as U+FFFD). Return true to continue, false to stop (the call then returns SAIL_OK with
 * stop_reason SAIL_STOP_CALLBACK).
 */
typedef bool (*sail_token_callback)(int32_t token, const char *piece, void *user_data);

/* Static text for a status code ("unknown status" for others). Never NULL. */
const char *sail_status_string(sail_status status);

/* Details of the latest failing sail_* call on this thread ("" if none). Never NULL. */
const char *sail_last_error_message(void);

struct sail_model_params sail_model_default_params(void);
struct sail_session_params sail_session_default_params(void);
struct sail_generate_params sail_generate_default_params(void);

/*
 * Loads NAME.gguf and its vision file. Returns NULL on failure with the status in *err (err may
 * be NULL): SAIL_ERR_FILE_NOT_FOUND, SAIL_ERR_BAD_MODEL, SAIL_ERR_INVALID_ARGUMENT, SAIL_ERR_RPC.
 * A model without a vision file loads (text-only); images are then refused (SAIL_ERR_NO_VISION).
 */
sail_model *sail_model_load(const char *path, struct sail_model_params params, sail_status *err);

/* Whether the model has a vision tower (false for NULL). */
bool sail_model_has_vision(const sail_model *model);

/* Drops the caller's reference (see OWNERSHIP). NULL: no-op. */
void sail_model_free(sail_model *model);

/*
 * A new conversation on `model`. Cheap: the KV cache is allocated by the first generate.
 * Returns NULL on failure with the status in *err (err may be NULL).
 */
sail_session *sail_session_new(const sail_model *model, struct sail_session_params params, sail_status *err);

/* Decodes and tiles an image file now; queues it for the next generate. */
sail_status sail_session_add_image_file(sail_session *session, const char *path);

/*
 * Decodes a video frame (one tile, no thumbnail) and queues it for the next generate; the
 * prompt then lists the frames as "Frame-1: <image>" ... before the question, as SAIL's video
 * path does (the CLI's --frames). Frames and images cannot be mixed in one question:
 * SAIL_ERR_INVALID_ARGUMENT.
 */
sail_status sail_session_add_frame_file(sail_session *session, const char *path);

/*
 * Queues a camera frame: `height` rows of `width` interleaved 8-bit R,G,B pixels. Row r starts
 * at rgb + r * stride (stride 0: width * 3, i.e. tightly packed; otherwise stride >= width * 3).
 * `len` is the number of readable bytes at `rgb`; it must be at least
 * stride * (height - 1) + width * 3, else SAIL_ERR_INVALID_ARGUMENT and nothing is read.
 * width/height <= 0 or sizes that overflow: SAIL_ERR_INVALID_ARGUMENT; more pixels than the
 * session's max_pixels: SAIL_ERR_BAD_IMAGE. The pixels are copied before the call returns.
 */
sail_status sail_session_add_image_rgb(sail_session *session, const uint8_t *rgb, size_t len,
                                       int32_t width, int32_t height, size_t stride);

/*
 * Runs one user turn: the queued images and `prompt` (UTF-8) in, up to n_predict tokens out,
 * each streamed to `callback` (may be NULL). `params` NULL: sail_generate_default_params().
 * The result stays readable through sail_session_last_*() until the next generate or reset.
 * Errors: SAIL_ERR_INVALID_ARGUMENT (NULL session/prompt, bad sampling values, "<image>"
 * markers that do not match the queued images), SAIL_ERR_CONTEXT_FULL (checked before any
 * compute), SAIL_ERR_GENERATION_FAILED, SAIL_ERR_BUSY. On error before decoding starts the
 * queued images stay queued and the conversation is unchanged.
 */
sail_status sail_session_generate(sail_session *session, const char *prompt,
                                  const struct sail_generate_params *params,
                                  sail_token_callback callback, void *user_data);

/* Copies the last generation's summary into *info. */
sail_status sail_session_last_info(sail_session *session, struct sail_generation_info *info);

/*
 * Copies up to `capacity` generated token ids of the last generation into `out` (nothing when
 * out is NULL) and returns how many there are in total (0 for NULL/busy sessions), so
 * sail_session_last_tokens(s, NULL, 0) is the token count.
 */
size_t sail_session_last_tokens(sail_session *session, int32_t *out, size_t capacity);

/* The last generation's full text ("" before the first; NULL for NULL/busy sessions). */
const char *sail_session_last_text(sail_session *session);

/* Forgets the conversation and queued images (keeps the context allocation). */
sail_status sail_session_reset(sail_session *session);

/*
 * Frees the session and its KV cache. NULL: no-op. A session that is inside a call right now
 * (e.g. freed from its own token callback) is not freed; the message says so.
 */
void sail_session_free(sail_session *session);

#ifdef __cplusplus
}
#endif

#endif /* SAIL_H */
