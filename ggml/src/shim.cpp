// The only C++ sail writes: llama.cpp and ggml entry points that can throw, each called inside
// try/catch.
//
// llama.cpp is C++ behind a C API, and several of its C functions let exceptions out (a
// std::bad_alloc from a vector in llama_decode, std::out_of_range from a vocabulary lookup, an
// allocation in the CPU backend's graph compute). An exception that reaches a Rust frame aborts
// the process ("Rust cannot catch foreign exceptions"), and Rust cannot catch it itself. So the
// calls that can throw go through these wrappers, which turn any exception into an error value
// and keep its message (per thread) for the error Rust reports.

#include "ggml-backend.h"
#include "llama.h"

#include <cstdint>
#include <cstring>
#include <exception>

namespace {

thread_local char last_exception[512];

void remember(const char * what) {
    std::strncpy(last_exception, what ? what : "unknown exception", sizeof(last_exception) - 1);
    last_exception[sizeof(last_exception) - 1] = '\0';
}

// Runs f(); on an exception records its message and returns `failed`.
template <typename T, typename F> T guarded(T failed, F f) {
    try {
        return f();
    } catch (const std::exception & e) {
        remember(e.what());
    } catch (...) {
        remember("a non-standard C++ exception");
    }
    return failed;
}

}  // namespace

extern "C" {

// The message of the last exception caught on this thread ("" if none).
const char * sail_shim_last_exception(void) {
    return last_exception;
}

llama_model * sail_shim_model_load(const char * path, llama_model_params params) {
    return guarded<llama_model *>(nullptr, [&] { return llama_model_load_from_file(path, params); });
}

llama_context * sail_shim_init_from_model(llama_model * model, llama_context_params params) {
    return guarded<llama_context *>(nullptr, [&] { return llama_init_from_model(model, params); });
}

// -1000: an exception (see sail_shim_last_exception).
int32_t sail_shim_decode(llama_context * ctx, llama_batch batch) {
    return guarded<int32_t>(-1000, [&] { return llama_decode(ctx, batch); });
}

// INT32_MIN: an exception.
int32_t sail_shim_tokenize(const llama_vocab * vocab, const char * text, int32_t text_len, llama_token * tokens,
                           int32_t n_tokens_max, bool add_special, bool parse_special) {
    return guarded<int32_t>(INT32_MIN, [&] {
        return llama_tokenize(vocab, text, text_len, tokens, n_tokens_max, add_special, parse_special);
    });
}

// INT32_MIN: an exception.
int32_t sail_shim_token_to_piece(const llama_vocab * vocab, llama_token token, char * buf, int32_t length, int32_t lstrip,
                                 bool special) {
    return guarded<int32_t>(INT32_MIN, [&] { return llama_token_to_piece(vocab, token, buf, length, lstrip, special); });
}

// -1: an exception.
int32_t sail_shim_is_eog(const llama_vocab * vocab, llama_token token) {
    return guarded<int32_t>(-1, [&] { return llama_vocab_is_eog(vocab, token) ? 1 : 0; });
}

// Sampling settings of sail's chain (mirrored in Rust: sail_ggml::llama::ShimSamplerParams).
struct sail_shim_sampler_params {
    int32_t n_vocab;
    float   temperature;
    int32_t top_k;
    float   top_p;
    float   min_p;
    float   repeat_penalty;
    int32_t repeat_last_n;
    uint32_t seed;
};

// The whole chain, built in one guarded call; NULL on an exception (nothing leaks: the chain
// owns what was added to it, and a sampler not yet added is freed here).
llama_sampler * sail_shim_sampler_chain(const sail_shim_sampler_params * p) {
    llama_sampler * chain = nullptr;
    llama_sampler * pending = nullptr;
    llama_sampler * made = guarded<llama_sampler *>(nullptr, [&] {
        chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
        auto add = [&](llama_sampler * s) {
            pending = s;
            llama_sampler_chain_add(chain, s);
            pending = nullptr;
        };
        if (p->repeat_penalty != 1.0f) {
            add(llama_sampler_init_penalties(p->n_vocab, p->repeat_last_n, p->repeat_penalty, 0.0f, 0.0f));
        }
        if (p->temperature <= 0.0f) {
            add(llama_sampler_init_greedy());
        } else {
            if (p->top_k > 0) {
                add(llama_sampler_init_top_k(p->top_k));
            }
            if (p->top_p < 1.0f) {
                add(llama_sampler_init_top_p(p->top_p, 1));
            }
            if (p->min_p > 0.0f) {
                add(llama_sampler_init_min_p(p->min_p, 1));
            }
            add(llama_sampler_init_temp(p->temperature));
            add(llama_sampler_init_dist(p->seed));
        }
        return chain;
    });
    if (!made) {
        if (pending) {
            llama_sampler_free(pending);
        }
        if (chain) {
            llama_sampler_free(chain);
        }
    }
    return made;
}

// 0: sampled into *out; -1: an exception.
int32_t sail_shim_sampler_sample(llama_sampler * smpl, llama_context * ctx, int32_t idx, llama_token * out) {
    return guarded<int32_t>(-1, [&] {
        *out = llama_sampler_sample(smpl, ctx, idx);
        return 0;
    });
}

// 0: accepted; -1: an exception.
int32_t sail_shim_sampler_accept(llama_sampler * smpl, llama_token token) {
    return guarded<int32_t>(-1, [&] {
        llama_sampler_accept(smpl, token);
        return 0;
    });
}

// 1: allocated; 0: ggml could not; -1: an exception.
int32_t sail_shim_sched_alloc_graph(ggml_backend_sched_t sched, ggml_cgraph * graph) {
    return guarded<int32_t>(-1, [&] {
        ggml_backend_sched_reset(sched);
        return ggml_backend_sched_alloc_graph(sched, graph) ? 1 : 0;
    });
}

// A ggml_status; -1000: an exception.
int32_t sail_shim_sched_graph_compute(ggml_backend_sched_t sched, ggml_cgraph * graph) {
    return guarded<int32_t>(-1000, [&] { return (int32_t) ggml_backend_sched_graph_compute(sched, graph); });
}

}  // extern "C"
