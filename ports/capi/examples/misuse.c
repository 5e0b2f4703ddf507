/*
 * misuse.c - what the C API does with wrong calls: every one must come back as a status code.
 *
 *   misuse MODEL.gguf IMAGE NOT_A_GGUF_FILE
 *
 * Exits 0 and prints "misuse: all N checks passed" when every call answered as documented.
 */
#include "sail.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, failures;

#define EXPECT(expr, want)                                                                        \
    do {                                                                                          \
        sail_status got_ = (expr);                                                                \
        checks++;                                                                                 \
        if (got_ != (want)) {                                                                     \
            failures++;                                                                           \
            fprintf(stderr, "FAIL line %d: %s -> %s, expected %s (%s)\n", __LINE__, #expr,        \
                    sail_status_string(got_), sail_status_string(want), sail_last_error_message()); \
        }                                                                                         \
    } while (0)

#define TRUE(cond)                                                                \
    do {                                                                          \
        checks++;                                                                 \
        if (!(cond)) {                                                            \
            failures++;                                                           \
            fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #cond);               \
        }                                                                         \
    } while (0)

struct reenter {
    sail_session *session;
    sail_status inner;
    int calls;
};

/* Calls back into its own session (refused: busy), then stops generation. */
static bool reentrant(int32_t token, const char *piece, void *user) {
    struct reenter *r = user;
    (void)token;
    (void)piece;
    r->calls++;
    r->inner = sail_session_generate(r->session, "again", NULL, NULL, NULL);
    return false;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf IMAGE NOT_A_GGUF_FILE\n", argv[0]);
        return 2;
    }
    struct sail_model_params mp = sail_model_default_params();
    struct sail_session_params sp = sail_session_default_params();
    sail_status st = SAIL_OK;

    /* status strings */
    TRUE(strcmp(sail_status_string(SAIL_OK), "ok") == 0);
    TRUE(strcmp(sail_status_string(12345), "unknown status") == 0);
    TRUE(sail_last_error_message() != NULL);

    /* loading */
    TRUE(sail_model_load(NULL, mp, &st) == NULL);
    EXPECT(st, SAIL_ERR_INVALID_ARGUMENT);
    TRUE(strstr(sail_last_error_message(), "path is NULL") != NULL);
    TRUE(sail_model_load("/nonexistent/model.gguf", mp, NULL) == NULL); /* err may be NULL */
    TRUE(sail_model_load("/nonexistent/model.gguf", mp, &st) == NULL);
    EXPECT(st, SAIL_ERR_FILE_NOT_FOUND);
    TRUE(sail_model_load(argv[3], mp, &st) == NULL);
    EXPECT(st, SAIL_ERR_BAD_MODEL);
    struct sail_model_params bad_mp = mp;
    bad_mp.mmproj_path = "/nonexistent/x.mmproj.gguf";
    TRUE(sail_model_load(argv[1], bad_mp, &st) == NULL);
    EXPECT(st, SAIL_ERR_FILE_NOT_FOUND);
    bad_mp = mp;
    bad_mp.n_threads = -2;
    TRUE(sail_model_load(argv[1], bad_mp, &st) == NULL);
    EXPECT(st, SAIL_ERR_INVALID_ARGUMENT);

    sail_model *model = sail_model_load(argv[1], mp, &st);
    EXPECT(st, SAIL_OK);
    if (!model) {
        fprintf(stderr, "cannot continue without a model\n");
        return 1;
    }
    TRUE(sail_model_has_vision(model));
    TRUE(!sail_model_has_vision(NULL));

    /* sessions */
    TRUE(sail_session_new(NULL, sp, &st) == NULL);
    EXPECT(st, SAIL_ERR_INVALID_ARGUMENT);
    struct sail_session_params bad_sp = sp;
    bad_sp.kv_type = 7;
    TRUE(sail_session_new(model, bad_sp, &st) == NULL);
    EXPECT(st, SAIL_ERR_INVALID_ARGUMENT);
    sail_session *s = sail_session_new(model, sp, &st);
    EXPECT(st, SAIL_OK);

    /* image files */
    EXPECT(sail_session_add_image_file(NULL, argv[2]), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_add_image_file(s, NULL), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_add_image_file(s, "/nonexistent/photo.jpg"), SAIL_ERR_FILE_NOT_FOUND);
    EXPECT(sail_session_add_image_file(s, argv[3]), SAIL_ERR_BAD_IMAGE);

    /* camera frames */
    enum { W = 40, H = 30, STRIDE = W * 3 + 8 };
    uint8_t *frame = calloc((size_t)STRIDE * H, 1);
    EXPECT(sail_session_add_image_rgb(NULL, frame, (size_t)STRIDE * H, W, H, STRIDE), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_add_image_rgb(s, NULL, 100, W, H, 0), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_add_image_rgb(s, frame, (size_t)W * H * 3 - 1, W, H, 0), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_add_image_rgb(s, frame, (size_t)STRIDE * (H - 1) + W * 3 - 1, W, H, STRIDE), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_add_image_rgb(s, frame, (size_t)STRIDE * H, 0, H, 0), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_add_image_rgb(s, frame, (size_t)STRIDE * H, W, -1, 0), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_add_image_rgb(s, frame, (size_t)STRIDE * H, W, H, W * 3 - 1), SAIL_ERR_INVALID_ARGUMENT);
    /* absurd sizes: overflow, or a buffer that cannot be as large as claimed */
    EXPECT(sail_session_add_image_rgb(s, frame, (size_t)STRIDE * H, INT32_MAX, INT32_MAX, 0), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_add_image_rgb(s, frame, (size_t)STRIDE * H, W, H, SIZE_MAX / 2), SAIL_ERR_INVALID_ARGUMENT);
    /* over the pixel budget: refused before a byte is read (len claims enough) */
    EXPECT(sail_session_add_image_rgb(s, frame, SIZE_MAX / 4, 100000, 100000, 0), SAIL_ERR_BAD_IMAGE);
    /* a good strided frame */
    EXPECT(sail_session_add_image_rgb(s, frame, (size_t)STRIDE * H, W, H, STRIDE), SAIL_OK);
    free(frame);

    /* generation arguments */
    struct sail_generate_params gp = sail_generate_default_params();
    gp.n_predict = 2;
    gp.ignore_eos = true;
    EXPECT(sail_session_generate(NULL, "hi", &gp, NULL, NULL), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_generate(s, NULL, &gp, NULL, NULL), SAIL_ERR_INVALID_ARGUMENT);
    struct sail_generate_params bad_gp = gp;
    bad_gp.top_p = 2.0f;
    EXPECT(sail_session_generate(s, "hi", &bad_gp, NULL, NULL), SAIL_ERR_INVALID_ARGUMENT);
    bad_gp = gp;
    bad_gp.n_predict = -1;
    EXPECT(sail_session_generate(s, "hi", &bad_gp, NULL, NULL), SAIL_ERR_INVALID_ARGUMENT);
    /* two images queued, one marker */
    EXPECT(sail_session_add_image_file(s, argv[2]), SAIL_OK);
    EXPECT(sail_session_generate(s, "<image> only one", &gp, NULL, NULL), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_reset(s), SAIL_OK);
    EXPECT(sail_session_reset(NULL), SAIL_ERR_INVALID_ARGUMENT);

    /* context too small for the image: refused before any compute */
    struct sail_session_params small = sp;
    small.n_ctx = 32;
    sail_session *tiny = sail_session_new(model, small, &st);
    EXPECT(st, SAIL_OK);
    EXPECT(sail_session_add_image_file(tiny, argv[2]), SAIL_OK);
    EXPECT(sail_session_generate(tiny, "hi", &gp, NULL, NULL), SAIL_ERR_CONTEXT_FULL);
    sail_session_free(tiny);

    /* re-entry from the callback is refused, and the callback can stop generation */
    struct reenter r = {s, SAIL_OK, 0};
    gp.n_predict = 4;
    EXPECT(sail_session_generate(s, "hi", &gp, reentrant, &r), SAIL_OK);
    EXPECT(r.inner, SAIL_ERR_BUSY);
    TRUE(r.calls == 1);
    struct sail_generation_info info;
    EXPECT(sail_session_last_info(s, &info), SAIL_OK);
    TRUE(info.n_tokens == 1 && info.stop_reason == SAIL_STOP_CALLBACK);
    EXPECT(sail_session_last_info(s, NULL), SAIL_ERR_INVALID_ARGUMENT);
    EXPECT(sail_session_last_info(NULL, &info), SAIL_ERR_INVALID_ARGUMENT);
    TRUE(sail_session_last_tokens(NULL, NULL, 0) == 0);
    TRUE(sail_session_last_tokens(s, NULL, 0) == 1);
    TRUE(sail_session_last_text(NULL) == NULL);
    TRUE(sail_session_last_text(s) != NULL);

    /* the model freed while a session lives: the session keeps working */
    sail_model_free(model);
    model = NULL;
    EXPECT(sail_session_reset(s), SAIL_OK);
    EXPECT(sail_session_add_image_file(s, argv[2]), SAIL_OK);
    gp.n_predict = 3;
    EXPECT(sail_session_generate(s, "after the model was freed", &gp, NULL, NULL), SAIL_OK);
    int32_t ids[8];
    TRUE(sail_session_last_tokens(s, ids, 8) == 3);
    sail_session_free(s);

    /* NULL frees are no-ops */
    sail_session_free(NULL);
    sail_model_free(NULL);

    if (failures) {
        fprintf(stderr, "misuse: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("misuse: all %d checks passed\n", checks);
    return 0;
}
