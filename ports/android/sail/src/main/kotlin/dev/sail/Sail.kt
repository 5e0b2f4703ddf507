// Kotlin face of libsail (ports/capi/include/sail.h) for Android apps.
//
// Why it is shaped this way:
// - The C handles are owned here and freed by close(): a model's weights are hundreds of MB to
//   GB, too much to leave to a finalizer's timing. Both classes are AutoCloseable (use { }).
// - Strings cross JNI as UTF-8 byte arrays (see sail_jni.c): JNI's own string functions use
//   "modified UTF-8", which breaks on emoji and other characters outside the BMP.
// - A session serves one thread at a time (sail.h); its methods are synchronized, so a second
//   thread waits instead of getting SAIL_ERR_BUSY, and close() cannot free a session that a
//   generate on another thread is still using. cancel() is the way to stop a running generate
//   from elsewhere (a UI button): it makes the next token callback return false.
// - Only java.* and kotlin.* are used here, so the file compiles without the Android SDK;
//   Bitmap support lives in SailBitmap.kt.
package dev.sail

import java.nio.ByteBuffer

/** A failure reported by libsail; [status] is one of sail.h's `SAIL_ERR_*` codes. */
class SailException(val status: Int, message: String) : RuntimeException(message) {
    internal constructor(status: Int, utf8: ByteArray) : this(status, String(utf8, Charsets.UTF_8))

    companion object {
        const val INVALID_ARGUMENT = 1
        const val FILE_NOT_FOUND = 2
        const val BAD_MODEL = 3
        const val NO_VISION = 4
        const val BAD_IMAGE = 5
        const val CONTEXT_FULL = 6
        const val GENERATION_FAILED = 7
        const val BUSY = 8
        const val INTERNAL = 9
    }
}

/** Receives each generated token, in order, on the thread that called generate. */
interface TokenCallback {
    /** [piece] is the token's text (complete characters; may be empty). Return false to stop. */
    fun onToken(token: Int, piece: String): Boolean
}

/** Sampling and length options; the defaults are sail's (greedy, 512 tokens, stop at the end of the reply). */
data class GenerateOptions @JvmOverloads constructor(
    val maxTokens: Int = 512,
    val temperature: Float = 0f,
    val topK: Int = 0,
    val topP: Float = 1f,
    val minP: Float = 0f,
    val repeatPenalty: Float = 1f,
    val seed: Int = 0,
    val ignoreEos: Boolean = false,
    val think: Boolean = false
)

/** What the last generate of a session did (sail.h's struct sail_generation_info). */
data class GenerationInfo(
    val tokens: Int,
    val promptTokens: Int,
    val imageTokens: Int,
    val tiles: Int,
    /** 1: the model ended its reply, 2: maxTokens reached, 3: the callback (or cancel) stopped it. */
    val stopReason: Int,
    val contextUsed: Int,
    val visionMs: Double,
    val prefillMs: Double,
    val decodeMs: Double
)

/** KV cache element types for [Sail.newSession] (sail.h's enum sail_kv_type). */
object KvType {
    const val AUTO = 0
    const val F16 = 1
    const val F32 = 2
}

/**
 * A loaded model: NAME.gguf plus its vision file NAME.mmproj.gguf. Immutable and shareable:
 * any number of threads may open sessions on it at once. [close] drops this handle; sessions
 * that are still open keep the weights alive until they are closed too.
 */
class Sail private constructor(handle: Long) : AutoCloseable {
    @Volatile
    private var handle: Long = handle

    companion object {
        /**
         * Loads [path] (a file path: models cannot be read from inside the APK, copy them to
         * app storage first). [mmprojPath] null: the vision file the model names, beside it.
         * [threads] 0: all cores. Throws [SailException].
         */
        @JvmStatic
        @JvmOverloads
        fun load(
            path: String,
            mmprojPath: String? = null,
            threads: Int = 0,
            gpuLayers: Int = 0,
            useMmap: Boolean = true,
            verbose: Boolean = false
        ): Sail {
            val h = SailNative.modelLoad(utf8(path), mmprojPath?.let { utf8(it) }, threads, gpuLayers, useMmap, verbose)
            return Sail(h)
        }
    }

    private fun live(): Long {
        val h = handle
        check(h != 0L) { "sail model is closed" }
        return h
    }

    /** Whether the model can take images (it was loaded with a vision file). */
    val hasVision: Boolean
        get() = SailNative.modelHasVision(live())

    /**
     * A new conversation. [systemPrompt] null: the model's default. [contextSize] 0: what the
     * first request needs. [maxTiles] 0: the model's tiling limit; 1: one tile per image.
     */
    @JvmOverloads
    fun newSession(
        systemPrompt: String? = null,
        contextSize: Int = 0,
        maxTiles: Int = 0,
        threads: Int = 0,
        kvType: Int = KvType.AUTO,
        maxPixels: Long = 0
    ): Session {
        val h = SailNative.sessionNew(live(), systemPrompt?.let { utf8(it) }, contextSize, maxTiles, threads, kvType, maxPixels)
        return Session(h)
    }

    @Synchronized
    override fun close() {
        val h = handle
        handle = 0
        if (h != 0L) SailNative.modelFree(h)
    }

    /** One conversation: its KV cache, queued images and last result. */
    class Session internal constructor(handle: Long) : AutoCloseable {
        private var handle: Long = handle

        @Volatile
        private var cancelled = false

        @Volatile
        private var generating: Thread? = null

        private fun live(): Long {
            check(handle != 0L) { "sail session is closed" }
            return handle
        }

        /** Decodes and tiles an image file now; it goes with the next [generate]. */
        @Synchronized
        fun addImage(path: String) {
            SailNative.sessionAddImageFile(live(), utf8(path))
        }

        /**
         * Queues a frame of [height] rows of [width] interleaved R,G,B bytes; row r starts at
         * r * [stride] (0: tightly packed, width * 3). The pixels are copied.
         */
        @Synchronized
        @JvmOverloads
        fun addImage(rgb: ByteArray, width: Int, height: Int, stride: Int = 0) {
            SailNative.sessionAddImageRgb(live(), rgb, width, height, stride)
        }

        /** As the ByteArray form, from a direct ByteBuffer (its whole capacity is readable). */
        @Synchronized
        @JvmOverloads
        fun addImage(rgb: ByteBuffer, width: Int, height: Int, stride: Int = 0) {
            require(rgb.isDirect) { "sail: addImage(ByteBuffer) needs a direct buffer" }
            SailNative.sessionAddImageRgbBuffer(live(), rgb, width, height, stride)
        }

        /**
         * Runs one user turn (queued images + [prompt]) and returns the reply; each token also
         * goes to [callback] as it is made. Blocks: call it off the main thread. An exception
         * thrown by the callback stops generation and is rethrown here.
         */
        @Synchronized
        @JvmOverloads
        fun generate(prompt: String, options: GenerateOptions = GenerateOptions(), callback: TokenCallback? = null): String {
            val h = live()
            cancelled = false
            generating = Thread.currentThread()
            try {
                val sink = TokenSink(callback) { cancelled }
                val o = options
                val text = SailNative.sessionGenerate(
                    h, utf8(prompt), o.maxTokens, o.temperature, o.topK, o.topP, o.minP,
                    o.repeatPenalty, o.seed, o.ignoreEos, o.think, sink
                )
                return if (text == null) "" else String(text, Charsets.UTF_8)
            } finally {
                generating = null
            }
        }

        /** [generate] with a Kotlin lambda as the token callback. */
        fun generate(prompt: String, options: GenerateOptions = GenerateOptions(), onToken: (Int, String) -> Boolean): String =
            generate(prompt, options, object : TokenCallback {
                override fun onToken(token: Int, piece: String): Boolean = onToken(token, piece)
            })

        /** Makes a running [generate] (on any thread) stop after its current token. */
        fun cancel() {
            cancelled = true
        }

        /** The last generate's counts and timings. */
        @Synchronized
        fun lastInfo(): GenerationInfo {
            val v = SailNative.sessionLastInfo(live())
            return GenerationInfo(
                v[0].toInt(), v[1].toInt(), v[2].toInt(), v[3].toInt(), v[4].toInt(), v[5].toInt(),
                v[6], v[7], v[8]
            )
        }

        /** Forgets the conversation and queued images. */
        @Synchronized
        fun reset() {
            SailNative.sessionReset(live())
        }

        /** Frees the session; waits for a generate on another thread to finish (see [cancel]). */
        override fun close() {
            check(generating !== Thread.currentThread()) {
                "sail: close() from inside the token callback; return false (or cancel()) to stop instead"
            }
            synchronized(this) {
                val h = handle
                handle = 0
                if (h != 0L) SailNative.sessionFree(h)
            }
        }
    }
}

/** What the native side calls per token: decodes UTF-8 and applies cancel(). */
internal class TokenSink(private val callback: TokenCallback?, private val isCancelled: () -> Boolean) {
    fun onToken(token: Int, utf8: ByteArray): Boolean {
        if (isCancelled()) return false
        val cb = callback ?: return true
        return cb.onToken(token, String(utf8, Charsets.UTF_8))
    }
}

private fun utf8(s: String): ByteArray = s.toByteArray(Charsets.UTF_8)

/** The JNI entry points in sail_jni.c; handles are the C pointers. */
internal object SailNative {
    init {
        System.loadLibrary("sail_jni")
    }

    @JvmStatic external fun modelLoad(path: ByteArray, mmproj: ByteArray?, threads: Int, gpuLayers: Int, useMmap: Boolean, verbose: Boolean): Long
    @JvmStatic external fun modelHasVision(model: Long): Boolean
    @JvmStatic external fun modelFree(model: Long)
    @JvmStatic external fun sessionNew(model: Long, systemPrompt: ByteArray?, nCtx: Int, maxTiles: Int, threads: Int, kvType: Int, maxPixels: Long): Long
    @JvmStatic external fun sessionAddImageFile(session: Long, path: ByteArray)
    @JvmStatic external fun sessionAddImageRgb(session: Long, rgb: ByteArray, width: Int, height: Int, stride: Int)
    @JvmStatic external fun sessionAddImageRgbBuffer(session: Long, rgb: ByteBuffer, width: Int, height: Int, stride: Int)
    @JvmStatic external fun sessionGenerate(
        session: Long, prompt: ByteArray, nPredict: Int, temperature: Float, topK: Int, topP: Float, minP: Float,
        repeatPenalty: Float, seed: Int, ignoreEos: Boolean, think: Boolean, sink: TokenSink?
    ): ByteArray?
    @JvmStatic external fun sessionLastInfo(session: Long): DoubleArray
    @JvmStatic external fun sessionReset(session: Long)
    @JvmStatic external fun sessionFree(session: Long)
}
