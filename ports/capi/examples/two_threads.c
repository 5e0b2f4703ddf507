/*
 * two_threads.c - one model, two threads, two sessions, generating at the same time.
 *
 *   two_threads MODEL.gguf N_PREDICT IMAGE_0 PROMPT_0 IMAGE_1 PROMPT_1
 *
 * Thread i makes its own session on the shared model, attaches IMAGE_i, waits until the other
 * thread is ready too, then answers PROMPT_i greedily (ignoring <|im_end|>). Prints one line per
 * thread:
 *   thread 0: <ids...>
 *
 * Build (see ../README.md):
 *   cc -O2 two_threads.c -I ../include libsail.a -lgomp -lstdc++ -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
 */
#include "sail.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_IDS 4096

/* Lets both threads start generating together (pthread_barrier_t is not on every platform). */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int waiting;
};

static void gate_wait(struct gate *g) {
    pthread_mutex_lock(&g->mu);
    if (++g->waiting == 2) {
        pthread_cond_broadcast(&g->cv);
    }
    while (g->waiting < 2) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

struct job {
    const sail_model *model; /* shared, read-only */
    struct gate *gate;
    const char *image, *prompt;
    int n_predict;
    int32_t ids[MAX_IDS];
    size_t n_ids;
    sail_status st;
    const char *what;
};

static bool on_token(int32_t token, const char *piece, void *user) {
    struct job *j = user;
    (void)piece;
    if (token >= 0 && j->n_ids < MAX_IDS) {
        j->ids[j->n_ids++] = token;
    }
    return true;
}

static void *worker(void *arg) {
    struct job *j = arg;
    sail_session *s = sail_session_new(j->model, sail_session_default_params(), &j->st);
    if (!s) {
        j->what = "creating a session";
        gate_wait(j->gate);
        return NULL;
    }
    j->st = sail_session_add_image_file(s, j->image);
    gate_wait(j->gate);
    if (j->st != SAIL_OK) {
        j->what = "adding the image";
    } else {
        struct sail_generate_params gp = sail_generate_default_params();
        gp.n_predict = j->n_predict;
        gp.temperature = 0.0f;
        gp.ignore_eos = true;
        j->st = sail_session_generate(s, j->prompt, &gp, on_token, j);
        j->what = "generating";
    }
    if (j->st != SAIL_OK) {
        /* the message is per thread: read it here, on the failing thread */
        fprintf(stderr, "thread: %s: %s (%s)\n", j->what, sail_status_string(j->st), sail_last_error_message());
    }
    sail_session_free(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s MODEL.gguf N_PREDICT IMAGE_0 PROMPT_0 IMAGE_1 PROMPT_1\n", argv[0]);
        return 2;
    }
    sail_status st;
    sail_model *model = sail_model_load(argv[1], sail_model_default_params(), &st);
    if (!model) {
        fprintf(stderr, "two_threads: loading the model: %s (%s)\n", sail_status_string(st), sail_last_error_message());
        return 1;
    }

    struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    static struct job jobs[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        jobs[i].model = model;
        jobs[i].gate = &gate;
        jobs[i].n_predict = atoi(argv[2]);
        jobs[i].image = argv[3 + 2 * i];
        jobs[i].prompt = argv[4 + 2 * i];
        if (pthread_create(&threads[i], NULL, worker, &jobs[i]) != 0) {
            fprintf(stderr, "two_threads: pthread_create failed\n");
            return 1;
        }
    }
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        if (jobs[i].st != SAIL_OK) {
            rc = 1;
            continue;
        }
        printf("thread %d:", i);
        for (size_t k = 0; k < jobs[i].n_ids; k++) {
            printf(" %d", jobs[i].ids[k]);
        }
        printf("\n");
    }
    sail_model_free(model);
    return rc;
}
