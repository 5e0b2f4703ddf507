// Exercises the Kotlin API and the JNI bridge on a desktop JVM (see host-check.sh): the same
// Sail.kt and sail_jni.c an Android app gets, linked with the x86-64 libsail. It cannot check
// Android itself (ART, the NDK, packaging); it checks the binding: names and signatures, UTF-8
// both ways, streaming, errors as exceptions, RGB input, cancel, and callback exceptions.
import dev.sail.GenerateOptions
import dev.sail.Sail
import dev.sail.SailException
import dev.sail.TokenCallback
import java.io.File
import java.nio.ByteBuffer
import javax.imageio.ImageIO

fun expect(ok: Boolean, what: String) {
    if (!ok) throw AssertionError(what)
    println("ok: $what")
}

fun main(args: Array<String>) {
    val modelPath = args[0]
    val imagePath = args[1]
    val prompt = args[2]
    val want = args[3].split(",").map { it.trim().toInt() } // `sail run --json` token ids
    val n = want.size
    val greedy = GenerateOptions(maxTokens = n, ignoreEos = true)

    val sail = Sail.load(modelPath, threads = 2)
    expect(sail.hasVision, "model has a vision tower")
    val s = sail.newSession()

    // 1. image file + streaming: ids equal the CLI's, streamed text equals the returned text
    s.addImage(imagePath)
    val ids = ArrayList<Int>()
    val streamed = StringBuilder()
    val text = s.generate(prompt, greedy) { id, piece -> ids.add(id); streamed.append(piece); true }
    expect(ids == want, "JNI greedy ids $ids equal sail run's $want")
    expect(text == streamed.toString(), "returned text equals the streamed pieces (${text.length} chars)")
    val info = s.lastInfo()
    expect(info.tokens == n && info.tiles > 0 && info.imageTokens > 0, "lastInfo: $info")

    // 2. the same picture as RGB bytes (ByteArray, then a direct ByteBuffer with padded rows)
    val img = ImageIO.read(File(imagePath))
    val w = img.width
    val h = img.height
    val rgb = ByteArray(w * h * 3)
    for (y in 0 until h) for (x in 0 until w) {
        val p = img.getRGB(x, y)
        val o = (y * w + x) * 3
        rgb[o] = (p shr 16).toByte(); rgb[o + 1] = (p shr 8).toByte(); rgb[o + 2] = p.toByte()
    }
    s.reset()
    s.addImage(rgb, w, h)
    val ids2 = ArrayList<Int>()
    s.generate(prompt, greedy) { id, _ -> ids2.add(id); true }
    expect(ids2 == want, "RGB ByteArray input gives the file's ids")
    val stride = w * 3 + 7
    val buf = ByteBuffer.allocateDirect(stride * h)
    for (y in 0 until h) {
        buf.position(y * stride)
        buf.put(rgb, y * w * 3, w * 3)
    }
    buf.clear()
    s.reset()
    s.addImage(buf, w, h, stride)
    val ids3 = ArrayList<Int>()
    s.generate(prompt, greedy) { id, _ -> ids3.add(id); true }
    expect(ids3 == want, "direct ByteBuffer with stride $stride gives the file's ids")

    // 3. errors arrive as SailException with sail.h's status and message
    try {
        s.addImage("/nonexistent/photo.jpg")
        expect(false, "missing image refused")
    } catch (e: SailException) {
        expect(e.status == SailException.FILE_NOT_FOUND, "missing image -> status ${e.status}: ${e.message}")
    }
    try {
        s.addImage(ByteArray(10), 4, 4)
        expect(false, "short RGB buffer refused")
    } catch (e: SailException) {
        expect(e.status == SailException.INVALID_ARGUMENT, "short RGB buffer -> status ${e.status}: ${e.message}")
    }
    try {
        Sail.load("/nonexistent/model.gguf")
        expect(false, "missing model refused")
    } catch (e: SailException) {
        expect(e.status == SailException.FILE_NOT_FOUND, "missing model -> status ${e.status}: ${e.message}")
    }
    try {
        s.generate("a\u0000b", greedy)
        expect(false, "NUL in prompt refused")
    } catch (e: IllegalArgumentException) {
        expect(true, "NUL in prompt -> IllegalArgumentException: ${e.message}")
    }

    // 4. text outside the BMP in both directions: a prompt with emoji goes in as UTF-8; and
    //    a path with non-ASCII characters reaches the C side intact (the error names it)
    s.reset()
    s.generate("Was ist das? \uD83D\uDE00 \u00e9\u4e2d", GenerateOptions(maxTokens = 2, ignoreEos = true))
    expect(s.lastInfo().promptTokens > 0, "emoji/CJK prompt accepted")
    val odd = "/nonexistent/caf\u00e9-\uD83D\uDE00.png"
    try {
        s.addImage(odd)
    } catch (e: SailException) {
        expect(e.message!!.contains("caf\u00e9-\uD83D\uDE00"), "non-ASCII path round-trips into the error: ${e.message}")
    }

    // 5. stopping: callback returns false; cancel(); an exception in the callback propagates
    s.reset()
    var count = 0
    s.generate(prompt, GenerateOptions(maxTokens = 16, ignoreEos = true)) { _, _ -> ++count < 3 }
    expect(count == 3 && s.lastInfo().stopReason == 3, "callback false stops after 3 tokens (stop reason 3)")
    s.reset()
    count = 0
    s.generate(prompt, GenerateOptions(maxTokens = 16, ignoreEos = true), object : TokenCallback {
        override fun onToken(token: Int, piece: String): Boolean {
            if (++count == 2) s.cancel()
            return true
        }
    })
    expect(count == 2, "cancel() stops the running generate")
    s.reset()
    try {
        s.generate(prompt, greedy) { _, _ -> throw IllegalStateException("boom from callback") }
        expect(false, "callback exception propagates")
    } catch (e: IllegalStateException) {
        expect(e.message == "boom from callback", "callback exception propagates unchanged")
    }
    try {
        s.generate(prompt, greedy) { _, _ -> s.close(); true }
        expect(false, "close inside callback refused")
    } catch (e: IllegalStateException) {
        expect(true, "close() inside the callback -> IllegalStateException")
    }
    // the session still works after all that
    s.reset()
    s.addImage(imagePath)
    val ids4 = ArrayList<Int>()
    s.generate(prompt, greedy) { id, _ -> ids4.add(id); true }
    expect(ids4 == want, "session still gives the same ids afterwards")

    // 6. closing: the model handle first, the session keeps working; then use-after-close
    sail.close()
    s.reset()
    s.generate(prompt, GenerateOptions(maxTokens = 1, ignoreEos = true))
    expect(true, "session generates after its model handle was closed")
    s.close()
    s.close()
    try {
        s.reset()
        expect(false, "closed session refused")
    } catch (e: IllegalStateException) {
        expect(true, "closed session -> IllegalStateException")
    }
    println("host check passed")
}
