/*
 * describe.c - load a sail model, attach one image, stream the answer to stdout.
 *
 *   describe MODEL.gguf IMAGE [PROMPT [N_PREDICT [--ignore-eos]]]
 *
 * Greedy decoding. Prints the answer as it is generated, then "[N tokens]"; the token ids the
 * callback saw go to stderr as one "ids: ..." line.
 *
 * Build (see ../README.md):
 *   cc -O2 describe.c -I ../include libsail.a -lgomp -lstdc++ -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
 */
#include "sail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stream {
    int32_t *ids;
    size_t n, cap;
    int oom;
};

static bool on_token(int32_t token, const char *piece, void *user) {
    struct stream *s = user;
    fputs(piece, stdout);
    fflush(stdout);
    if (token < 0) { /* leftover bytes of an incomplete character, not a token */
        return true;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        int32_t *ids = realloc(s->ids, cap * sizeof *ids);
        if (!ids) {
            s->oom = 1;
            return false; /* stop generating */
        }
        s->ids = ids;
        s->cap = cap;
    }
    s->ids[s->n++] = token;
    return true;
}

static int fail(const char *what, sail_status st) {
    fprintf(stderr, "describe: %s: %s (%s)\n", what, sail_status_string(st), sail_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf IMAGE [PROMPT [N_PREDICT [--ignore-eos]]]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 3 ? argv[3] : "Describe this image.";

    struct sail_generate_params gp = sail_generate_default_params();
    gp.temperature = 0.0f;
    if (argc > 4) {
        gp.n_predict = atoi(argv[4]);
    }
    gp.ignore_eos = argc > 5 && strcmp(argv[5], "--ignore-eos") == 0;

    sail_status st = SAIL_OK;
    sail_model *model = sail_model_load(argv[1], sail_model_default_params(), &st);
    if (!model) {
        return fail("loading the model", st);
    }
    sail_session *session = sail_session_new(model, sail_session_default_params(), &st);
    if (!session) {
        sail_model_free(model);
        return fail("creating a session", st);
    }

    int rc = 0;
    struct stream s = {0};
    st = sail_session_add_image_file(session, argv[2]);
    if (st != SAIL_OK) {
        rc = fail("adding the image", st);
    } else {
        st = sail_session_generate(session, prompt, &gp, on_token, &s);
        if (st != SAIL_OK) {
            rc = fail("generating", st);
        } else if (s.oom) {
            fprintf(stderr, "describe: out of memory\n");
            rc = 1;
        } else {
            struct sail_generation_info info;
            sail_session_last_info(session, &info);
            printf("\n[%d tokens]\n", info.n_tokens);
            fprintf(stderr, "ids:");
            for (size_t i = 0; i < s.n; i++) {
                fprintf(stderr, " %d", s.ids[i]);
            }
            fprintf(stderr, "\n");
        }
    }

    free(s.ids);
    sail_session_free(session);
    sail_model_free(model);
    return rc;
}
