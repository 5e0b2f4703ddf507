// Bitmap input for Android apps, kept apart from Sail.kt because it needs the Android SDK.
// sail takes 8-bit RGB; a Bitmap is ARGB (premultiplied for non-opaque pixels), so this drops
// alpha the way decoding a PNG for the model would (sail flattens images to RGB as well).
package dev.sail

import android.graphics.Bitmap

/** Queues [bitmap] (any config; converted through getPixels) for the next generate. */
fun Sail.Session.addImage(bitmap: Bitmap) {
    val w = bitmap.width
    val h = bitmap.height
    val argb = IntArray(w * h)
    bitmap.getPixels(argb, 0, w, 0, 0, w, h)
    val rgb = ByteArray(w * h * 3)
    var o = 0
    for (p in argb) {
        rgb[o] = (p shr 16).toByte()
        rgb[o + 1] = (p shr 8).toByte()
        rgb[o + 2] = p.toByte()
        o += 3
    }
    addImage(rgb, w, h, 0)
}
