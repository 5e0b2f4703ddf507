// Swift face of libsail (sail.h, imported as the CSail module) for iOS apps.
//
// Why it looks this way:
// - Handles are freed in deinit: Swift's reference counting gives the deterministic release a
//   multi-GB model needs, and sail.h lets sessions outlive the model handle (the C side keeps
//   the weights alive), so the two classes need no reference to each other.
// - SailModel is Sendable (sail.h: a model is immutable and shareable across threads);
//   SailSession is not (one thread at a time; a concurrent call gets SAIL_ERR_BUSY).
// - The token callback is a C function pointer: the Swift closure travels through user_data,
//   and cannot throw (nothing may unwind through the C library); return false to stop.
// - Not compiled in sail's environment (no Swift toolchain or Apple SDK there): names and
//   types follow sail.h, and the first build in Xcode is its first check.
import CSail
import Foundation
#if canImport(CoreGraphics)
import CoreGraphics
#endif

/// A failure reported by libsail: `status` is one of sail.h's `SAIL_ERR_*` codes.
public struct SailError: Error, CustomStringConvertible {
    public let status: Int32
    public let message: String
    public var description: String { "sail: \(message) (status \(status))" }

    static func last(_ status: sail_status) -> SailError {
        let detail = String(cString: sail_last_error_message())
        return SailError(status: status, message: detail.isEmpty ? String(cString: sail_status_string(status)) : detail)
    }
}

@inline(__always)
private func check(_ status: sail_status) throws {
    if status != 0 { throw SailError.last(status) }
}

private func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let s = s else { return try body(nil) }
    return try s.withCString { try body($0) }
}

/// Sampling and length options; the defaults are sail's (greedy, 512 tokens, stop at the end of the reply).
public struct GenerateOptions {
    public var maxTokens: Int32 = 512
    public var temperature: Float = 0
    public var topK: Int32 = 0
    public var topP: Float = 1
    public var minP: Float = 0
    public var repeatPenalty: Float = 1
    public var seed: UInt32 = 0
    public var ignoreEos = false
    public var think = false
    public init() {}
}

/// What the last `generate` did.
public struct GenerationInfo {
    public let tokens: Int
    public let promptTokens: Int
    public let imageTokens: Int
    public let tiles: Int
    /// 1: the model ended its reply, 2: maxTokens reached, 3: the callback stopped it.
    public let stopReason: Int
    public let contextUsed: Int
    public let visionMs: Double
    public let prefillMs: Double
    public let decodeMs: Double
}

/// A loaded model: NAME.gguf plus NAME.mmproj.gguf beside it (or `mmprojPath`).
public final class SailModel: @unchecked Sendable {
    let handle: OpaquePointer

    /// `threads` 0: all cores. `gpuLayers`: language-model layers on the GPU backend (Metal in an
    /// iOS build; -1 all). `visionDevice`: ggml device name for the vision tower, nil for CPU.
    public init(path: String, mmprojPath: String? = nil, threads: Int32 = 0, gpuLayers: Int32 = 0,
                visionDevice: String? = nil, useMmap: Bool = true, verbose: Bool = false) throws {
        var params = sail_model_default_params()
        params.n_threads = threads
        params.n_gpu_layers = gpuLayers
        params.use_mmap = useMmap
        params.verbose = verbose
        var status: sail_status = 0
        let h: OpaquePointer? = withOptionalCString(mmprojPath) { mmproj in
            withOptionalCString(visionDevice) { device in
                params.mmproj_path = mmproj
                params.vision_device = device
                return sail_model_load(path, params, &status)
            }
        }
        guard let h = h else { throw SailError.last(status) }
        handle = h
    }

    deinit { sail_model_free(handle) }

    public var hasVision: Bool { sail_model_has_vision(handle) }

    /// A new conversation. `contextSize` 0: what the first request needs; `maxTiles` 0: the
    /// model's tiling limit, 1: one tile per image.
    public func newSession(systemPrompt: String? = nil, contextSize: UInt32 = 0, maxTiles: Int32 = 0,
                           threads: Int32 = 0) throws -> SailSession {
        try SailSession(model: self, systemPrompt: systemPrompt, contextSize: contextSize, maxTiles: maxTiles, threads: threads)
    }
}

private final class CallbackBox {
    let fn: (Int32, String) -> Bool
    init(_ fn: @escaping (Int32, String) -> Bool) { self.fn = fn }
}

/// One conversation (KV cache, queued images, last result). Use from one thread at a time.
public final class SailSession {
    let handle: OpaquePointer

    init(model: SailModel, systemPrompt: String?, contextSize: UInt32, maxTiles: Int32, threads: Int32) throws {
        var params = sail_session_default_params()
        params.n_ctx = contextSize
        params.max_tiles = maxTiles
        params.n_threads = threads
        var status: sail_status = 0
        let h: OpaquePointer? = withOptionalCString(systemPrompt) { system in
            params.system_prompt = system
            return sail_session_new(model.handle, params, &status)
        }
        guard let h = h else { throw SailError.last(status) }
        handle = h
    }

    deinit { sail_session_free(handle) }

    /// Decodes and tiles an image file now; it goes with the next `generate`.
    public func addImage(path: String) throws {
        try check(sail_session_add_image_file(handle, path))
    }

    /// Queues `height` rows of `width` interleaved R,G,B bytes; row r starts at r * `stride`
    /// (0: tightly packed). The pixels are copied.
    public func addImage(rgb: UnsafeRawBufferPointer, width: Int32, height: Int32, stride: Int = 0) throws {
        let base = rgb.baseAddress?.assumingMemoryBound(to: UInt8.self)
        try check(sail_session_add_image_rgb(handle, base, rgb.count, width, height, stride))
    }

    public func addImage(rgb: Data, width: Int32, height: Int32, stride: Int = 0) throws {
        try rgb.withUnsafeBytes { try addImage(rgb: $0, width: width, height: height, stride: stride) }
    }

    #if canImport(CoreGraphics)
    /// Queues a CGImage (e.g. `UIImage.cgImage`), drawn into 8-bit RGBA and passed on as RGB.
    public func addImage(_ image: CGImage) throws {
        let w = image.width, h = image.height
        var rgba = [UInt8](repeating: 0, count: w * h * 4)
        let drawn: Bool = rgba.withUnsafeMutableBytes { buf in
            guard let ctx = CGContext(data: buf.baseAddress, width: w, height: h, bitsPerComponent: 8, bytesPerRow: w * 4,
                                      space: CGColorSpaceCreateDeviceRGB(),
                                      bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { return false }
            ctx.draw(image, in: CGRect(x: 0, y: 0, width: w, height: h))
            return true
        }
        guard drawn else { throw SailError(status: 5, message: "cannot draw the CGImage into an RGB buffer") }
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) {
            rgb[3 * i] = rgba[4 * i]
            rgb[3 * i + 1] = rgba[4 * i + 1]
            rgb[3 * i + 2] = rgba[4 * i + 2]
        }
        try rgb.withUnsafeBytes { try addImage(rgb: $0, width: Int32(w), height: Int32(h)) }
    }
    #endif

    /// Runs one user turn (queued images + `prompt`) and returns the reply; `onToken` sees each
    /// token as it is made (return false to stop). Blocks: call it off the main thread.
    @discardableResult
    public func generate(_ prompt: String, options: GenerateOptions = GenerateOptions(),
                         onToken: ((Int32, String) -> Bool)? = nil) throws -> String {
        var gp = sail_generate_default_params()
        gp.n_predict = options.maxTokens
        gp.temperature = options.temperature
        gp.top_k = options.topK
        gp.top_p = options.topP
        gp.min_p = options.minP
        gp.repeat_penalty = options.repeatPenalty
        gp.seed = options.seed
        gp.ignore_eos = options.ignoreEos
        gp.think = options.think
        let status: sail_status
        if let onToken = onToken {
            let box = CallbackBox(onToken)
            status = withExtendedLifetime(box) {
                sail_session_generate(handle, prompt, &gp, { token, piece, user in
                    let cb = Unmanaged<CallbackBox>.fromOpaque(user!).takeUnretainedValue()
                    return cb.fn(token, piece.map { String(cString: $0) } ?? "")
                }, Unmanaged.passUnretained(box).toOpaque())
            }
        } else {
            status = sail_session_generate(handle, prompt, &gp, nil, nil)
        }
        try check(status)
        return sail_session_last_text(handle).map { String(cString: $0) } ?? ""
    }

    /// The last generation's token ids.
    public func lastTokens() -> [Int32] {
        let n = sail_session_last_tokens(handle, nil, 0)
        var out = [Int32](repeating: 0, count: n)
        let got = out.withUnsafeMutableBufferPointer { sail_session_last_tokens(handle, $0.baseAddress, n) }
        return Array(out.prefix(min(n, got)))
    }

    public func lastInfo() throws -> GenerationInfo {
        var i = sail_generation_info()
        try check(sail_session_last_info(handle, &i))
        return GenerationInfo(tokens: Int(i.n_tokens), promptTokens: Int(i.n_prompt_tokens), imageTokens: Int(i.n_image_tokens),
                              tiles: Int(i.n_tiles), stopReason: Int(i.stop_reason), contextUsed: Int(i.n_past),
                              visionMs: i.vision_ms, prefillMs: i.prefill_ms, decodeMs: i.decode_ms)
    }

    /// Forgets the conversation and queued images.
    public func reset() throws {
        try check(sail_session_reset(handle))
    }
}
