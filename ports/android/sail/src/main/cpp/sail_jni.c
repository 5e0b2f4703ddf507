/*
 * JNI bridge between dev.sail.SailNative (Kotlin) and the C interface in sail.h.
 *
 * Why it looks the way it does:
 * - Text crosses as byte[] holding standard UTF-8, never as jstring: JNI's GetStringUTFChars and
 *   NewStringUTF speak "modified UTF-8", which encodes emoji as surrogate pairs (sail would refuse
 *   the prompt as non-UTF-8) and makes Android's CheckJNI abort on the 4-byte sequences a model
 *   can stream. Kotlin does the String <-> UTF-8 conversion.
 * - The token callback runs on the thread that called generate, so the JNIEnv of that call is
 *   valid inside it. Each token's byte[] is a local reference that is deleted at once: a long
 *   generation would otherwise overflow the local reference table.
 * - An exception thrown by the Kotlin callback stops generation (the callback returns false) and
 *   is left pending, so it reaches the caller of generate unchanged.
 * - Handles are the C pointers stored in a Java long; the Kotlin classes own and free them.
 */
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sail.h"

static jclass g_sail_exception;     /* dev.sail.SailException */
static jmethodID g_sail_exception_init; /* SailException(int, byte[]) */
static jmethodID g_sink_on_token;   /* dev.sail.TokenSink.onToken(int, byte[]): boolean */

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
    (void)reserved;
    JNIEnv *env;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
    jclass ex = (*env)->FindClass(env, "dev/sail/SailException");
    if (!ex) return JNI_ERR;
    g_sail_exception = (jclass)(*env)->NewGlobalRef(env, ex);
    g_sail_exception_init = (*env)->GetMethodID(env, ex, "<init>", "(I[B)V");
    jclass sink = (*env)->FindClass(env, "dev/sail/TokenSink");
    if (!sink || !g_sail_exception_init) return JNI_ERR;
    g_sink_on_token = (*env)->GetMethodID(env, sink, "onToken", "(I[B)Z");
    if (!g_sink_on_token) return JNI_ERR;
    (*env)->DeleteLocalRef(env, ex);
    (*env)->DeleteLocalRef(env, sink);
    return JNI_VERSION_1_6;
}

static jbyteArray to_bytes(JNIEnv *env, const char *s) {
    if (!s) return NULL;
    jsize n = (jsize)strlen(s);
    jbyteArray a = (*env)->NewByteArray(env, n);
    if (a && n) (*env)->SetByteArrayRegion(env, a, 0, n, (const jbyte *)s);
    return a;
}

/* Throws dev.sail.SailException(status, sail_last_error_message()). */
static void throw_status(JNIEnv *env, sail_status st) {
    const char *msg = sail_last_error_message();
    if (!msg || !*msg) msg = sail_status_string(st);
    jbyteArray m = to_bytes(env, msg);
    if (!m) return; /* OutOfMemoryError is pending */
    jthrowable t = (jthrowable)(*env)->NewObject(env, g_sail_exception, g_sail_exception_init, (jint)st, m);
    if (t) (*env)->Throw(env, t);
}

static void throw_named(JNIEnv *env, const char *cls, const char *msg) {
    jclass c = (*env)->FindClass(env, cls);
    if (c) (*env)->ThrowNew(env, c, msg);
}

/*
 * A NUL-terminated copy of a UTF-8 byte[] (NULL for a null array). Returns NULL with an
 * exception pending when the text holds a NUL byte (C would silently cut it there) or on OOM;
 * *ok tells the two NULLs apart.
 */
static char *c_string(JNIEnv *env, jbyteArray a, int *ok) {
    *ok = 1;
    if (!a) return NULL;
    jsize n = (*env)->GetArrayLength(env, a);
    char *s = malloc((size_t)n + 1);
    if (!s) {
        *ok = 0;
        throw_named(env, "java/lang/OutOfMemoryError", "sail: string copy");
        return NULL;
    }
    (*env)->GetByteArrayRegion(env, a, 0, n, (jbyte *)s);
    s[n] = 0;
    if (memchr(s, 0, (size_t)n)) {
        free(s);
        *ok = 0;
        throw_named(env, "java/lang/IllegalArgumentException", "sail: text contains a NUL character");
        return NULL;
    }
    return s;
}

static sail_model *model_of(jlong h) { return (sail_model *)(intptr_t)h; }
static sail_session *session_of(jlong h) { return (sail_session *)(intptr_t)h; }

JNIEXPORT jlong JNICALL Java_dev_sail_SailNative_modelLoad(JNIEnv *env, jclass cls, jbyteArray path, jbyteArray mmproj,
                                                          jint threads, jint gpu_layers, jboolean use_mmap, jboolean verbose) {
    (void)cls;
    int ok;
    char *p = c_string(env, path, &ok);
    if (!ok) return 0;
    char *mm = c_string(env, mmproj, &ok);
    if (!ok) {
        free(p);
        return 0;
    }
    struct sail_model_params mp = sail_model_default_params();
    mp.mmproj_path = mm;
    mp.n_threads = threads;
    mp.n_gpu_layers = gpu_layers;
    mp.use_mmap = use_mmap != JNI_FALSE;
    mp.verbose = verbose != JNI_FALSE;
    sail_status st = SAIL_OK;
    sail_model *m = sail_model_load(p, mp, &st);
    free(p);
    free(mm);
    if (!m) throw_status(env, st);
    return (jlong)(intptr_t)m;
}

JNIEXPORT jboolean JNICALL Java_dev_sail_SailNative_modelHasVision(JNIEnv *env, jclass cls, jlong model) {
    (void)env;
    (void)cls;
    return sail_model_has_vision(model_of(model)) ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT void JNICALL Java_dev_sail_SailNative_modelFree(JNIEnv *env, jclass cls, jlong model) {
    (void)env;
    (void)cls;
    sail_model_free(model_of(model));
}

JNIEXPORT jlong JNICALL Java_dev_sail_SailNative_sessionNew(JNIEnv *env, jclass cls, jlong model, jbyteArray system_prompt,
                                                           jint n_ctx, jint max_tiles, jint threads, jint kv_type,
                                                           jlong max_pixels) {
    (void)cls;
    int ok;
    char *sys = c_string(env, system_prompt, &ok);
    if (!ok) return 0;
    struct sail_session_params sp = sail_session_default_params();
    sp.system_prompt = sys;
    sp.n_ctx = n_ctx > 0 ? (uint32_t)n_ctx : 0;
    sp.max_tiles = max_tiles;
    sp.n_threads = threads;
    sp.kv_type = kv_type;
    sp.max_pixels = max_pixels > 0 ? (uint64_t)max_pixels : 0;
    sail_status st = SAIL_OK;
    sail_session *s = sail_session_new(model_of(model), sp, &st);
    free(sys); /* the library copies it */
    if (!s) throw_status(env, st);
    return (jlong)(intptr_t)s;
}

JNIEXPORT void JNICALL Java_dev_sail_SailNative_sessionAddImageFile(JNIEnv *env, jclass cls, jlong session, jbyteArray path) {
    (void)cls;
    int ok;
    char *p = c_string(env, path, &ok);
    if (!ok) return;
    sail_status st = sail_session_add_image_file(session_of(session), p);
    free(p);
    if (st != SAIL_OK) throw_status(env, st);
}

JNIEXPORT void JNICALL Java_dev_sail_SailNative_sessionAddImageRgb(JNIEnv *env, jclass cls, jlong session, jbyteArray rgb,
                                                                  jint width, jint height, jint stride) {
    (void)cls;
    if (!rgb) {
        throw_named(env, "java/lang/NullPointerException", "sail: rgb");
        return;
    }
    if (stride < 0) {
        throw_named(env, "java/lang/IllegalArgumentException", "sail: negative stride");
        return;
    }
    jsize n = (*env)->GetArrayLength(env, rgb);
    jbyte *px = (*env)->GetByteArrayElements(env, rgb, NULL);
    if (!px) return; /* OutOfMemoryError is pending */
    sail_status st = sail_session_add_image_rgb(session_of(session), (const uint8_t *)px, (size_t)n, width, height, (size_t)stride);
    (*env)->ReleaseByteArrayElements(env, rgb, px, JNI_ABORT); /* read only: nothing to copy back */
    if (st != SAIL_OK) throw_status(env, st);
}

/* A direct ByteBuffer (camera pipelines hand these out) without a copy on the Java side. */
JNIEXPORT void JNICALL Java_dev_sail_SailNative_sessionAddImageRgbBuffer(JNIEnv *env, jclass cls, jlong session, jobject buf,
                                                                        jint width, jint height, jint stride) {
    (void)cls;
    const uint8_t *px = buf ? (const uint8_t *)(*env)->GetDirectBufferAddress(env, buf) : NULL;
    jlong cap = buf ? (*env)->GetDirectBufferCapacity(env, buf) : -1;
    if (!px || cap < 0) {
        throw_named(env, "java/lang/IllegalArgumentException", "sail: not a direct ByteBuffer");
        return;
    }
    if (stride < 0) {
        throw_named(env, "java/lang/IllegalArgumentException", "sail: negative stride");
        return;
    }
    sail_status st = sail_session_add_image_rgb(session_of(session), px, (size_t)cap, width, height, (size_t)stride);
    if (st != SAIL_OK) throw_status(env, st);
}

struct sink_ctx {
    JNIEnv *env;
    jobject sink;
};

static bool on_token(int32_t token, const char *piece, void *user) {
    struct sink_ctx *c = user;
    JNIEnv *env = c->env;
    jbyteArray b = to_bytes(env, piece);
    if (!b) return false; /* OutOfMemoryError pending: stop */
    jboolean go = (*env)->CallBooleanMethod(env, c->sink, g_sink_on_token, (jint)token, b);
    (*env)->DeleteLocalRef(env, b);
    if ((*env)->ExceptionCheck(env)) return false; /* the callback threw: stop, keep it pending */
    return go != JNI_FALSE;
}

JNIEXPORT jbyteArray JNICALL Java_dev_sail_SailNative_sessionGenerate(JNIEnv *env, jclass cls, jlong session, jbyteArray prompt,
                                                                      jint n_predict, jfloat temperature, jint top_k, jfloat top_p,
                                                                      jfloat min_p, jfloat repeat_penalty, jint seed,
                                                                      jboolean ignore_eos, jboolean think, jobject sink) {
    (void)cls;
    if (!prompt) {
        throw_named(env, "java/lang/NullPointerException", "sail: prompt");
        return NULL;
    }
    int ok;
    char *p = c_string(env, prompt, &ok);
    if (!ok) return NULL;
    struct sail_generate_params gp = sail_generate_default_params();
    gp.n_predict = n_predict;
    gp.temperature = temperature;
    gp.top_k = top_k;
    gp.top_p = top_p;
    gp.min_p = min_p;
    gp.repeat_penalty = repeat_penalty;
    gp.seed = (uint32_t)seed;
    gp.ignore_eos = ignore_eos != JNI_FALSE;
    gp.think = think != JNI_FALSE;
    struct sink_ctx ctx = {env, sink};
    sail_status st = sail_session_generate(session_of(session), p, &gp, sink ? on_token : NULL, sink ? &ctx : NULL);
    free(p);
    if ((*env)->ExceptionCheck(env)) return NULL; /* from the callback */
    if (st != SAIL_OK) {
        throw_status(env, st);
        return NULL;
    }
    return to_bytes(env, sail_session_last_text(session_of(session)));
}

/* [n_tokens, n_prompt_tokens, n_image_tokens, n_tiles, stop_reason, n_past, vision_ms, prefill_ms, decode_ms] */
JNIEXPORT jdoubleArray JNICALL Java_dev_sail_SailNative_sessionLastInfo(JNIEnv *env, jclass cls, jlong session) {
    (void)cls;
    struct sail_generation_info gi;
    sail_status st = sail_session_last_info(session_of(session), &gi);
    if (st != SAIL_OK) {
        throw_status(env, st);
        return NULL;
    }
    jdouble v[9] = {gi.n_tokens, gi.n_prompt_tokens, gi.n_image_tokens, gi.n_tiles, gi.stop_reason,
                    gi.n_past, gi.vision_ms, gi.prefill_ms, gi.decode_ms};
    jdoubleArray a = (*env)->NewDoubleArray(env, 9);
    if (a) (*env)->SetDoubleArrayRegion(env, a, 0, 9, v);
    return a;
}

JNIEXPORT void JNICALL Java_dev_sail_SailNative_sessionReset(JNIEnv *env, jclass cls, jlong session) {
    (void)cls;
    sail_status st = sail_session_reset(session_of(session));
    if (st != SAIL_OK) throw_status(env, st);
}

JNIEXPORT void JNICALL Java_dev_sail_SailNative_sessionFree(JNIEnv *env, jclass cls, jlong session) {
    (void)env;
    (void)cls;
    sail_session_free(session_of(session));
}
