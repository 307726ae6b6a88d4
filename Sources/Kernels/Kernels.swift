// Entry points over CKernels used by the models.

import CKernels
import GGUF

public enum Kernels {
    /// Whether the C library can dequantize and dot this tensor type.
    public static func isSupported(_ type: GGMLType) -> Bool { ds_type_supported(Int32(type.rawValue)) != 0 }

    /// Whether `quantizeReference` can write this type (of the i-quants only IQ4_NL and IQ4_XS: the
    /// codebook i-quants have no reference quantizer in ggml).
    public static func hasQuantizer(_ type: GGMLType) -> Bool { ds_type_has_quantizer(Int32(type.rawValue)) != 0 }

    /// Whether `quantize(_:_:rows:cols:importance:into:)` can write this type (every i-quant too).
    public static func canQuantize(_ type: GGMLType) -> Bool { ds_type_has_tensor_quantizer(Int32(type.rawValue)) != 0 }

    /// Whether quantizing to this type needs an importance vector (IQ2_XXS, IQ2_XS, IQ1_S, as in ggml).
    public static func needsImportance(_ type: GGMLType) -> Bool { ds_type_quantizer_needs_importance(Int32(type.rawValue)) != 0 }

    /// `count` elements (whole blocks) of an i-quant type as random blocks: random codes, signs and
    /// sub-block scales, each block scaled to root mean square `rms` (synthetic weights). Nil for types
    /// that are not i-quants.
    public static func randomBlocks(_ type: GGMLType, count: Int, seed: UInt64, rms: Float) -> [UInt8]? {
        guard let bytes = type.byteCount(elements: count) else { return nil }
        var out = [UInt8](repeating: 0, count: bytes)
        let ok = out.withUnsafeMutableBytes { ds_random_iquant_blocks(Int32(type.rawValue), seed, rms, $0.baseAddress!, Int64(count)) }
        return ok == 1 ? out : nil
    }

    /// The row x[0..<count] quantized to `type` with ggml's reference quantizer (writes type's row bytes).
    public static func quantizeReference(_ type: GGMLType, _ x: UnsafePointer<Float>, into dst: UnsafeMutableRawPointer, count: Int) {
        ds_quantize_row_ref(Int32(type.rawValue), x, dst, Int64(count))
    }

    public static func dequantize(_ type: GGMLType, _ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
        ds_dequantize_row(Int32(type.rawValue), src, dst, Int64(count))
    }

    /// `values` (whole blocks of `type`) quantized by the scalar reference quantizer: the same bytes on every CPU.
    public static func quantizeReference(_ values: [Float], to type: GGMLType) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: values.count)!)
        values.withUnsafeBufferPointer { v in
            bytes.withUnsafeMutableBytes { quantizeReference(type, v.baseAddress!, into: $0.baseAddress!, count: values.count) }
        }
        return bytes
    }

    /// W[rows, cols] (floats) quantized to `type` with the bytes llama-quantize writes: `importance`
    /// (cols values, an imatrix's mean squared activation per input column) weights the fits of the
    /// types that take it; nil gives the reference quantizers. `dst` holds rows · type.byteCount(cols)
    /// bytes. False, writing nothing, where `type` has no quantizer, needs importance (`needsImportance`)
    /// and has none, or cols is not a multiple of its block.
    @discardableResult
    public static func quantize(_ type: GGMLType, _ x: UnsafePointer<Float>, rows: Int, cols: Int, importance: UnsafePointer<Float>?,
                                into dst: UnsafeMutableRawPointer) -> Bool {
        ds_quantize_rows(Int32(type.rawValue), x, dst, Int64(rows), Int64(cols), importance) != 0
    }

    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        ds_dot_f32(a, b, Int64(n))
    }

    /// out = x / rms(x) * w   (w nil: plain normalisation)
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>, count: Int, epsilon: Float) {
        ds_rmsnorm_f32(x, w, out, Int64(count), epsilon, 0)
    }

    public static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        ds_swiglu_f32(gate, up, Int64(count))
    }

    /// gate = silu(min(gate, limit)) ⊙ clamp(up, −limit, limit)   (DeepSeek V4)
    public static func swigluClamped(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int, limit: Float) {
        ds_swiglu_clamped_f32(gate, up, Int64(count), limit)
    }

    public static func geglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        ds_geglu_f32(gate, up, Int64(count))
    }

    public static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        ds_axpy_f32(y, x, 1, Int64(count))
    }

    /// y += alpha · x
    public static func axpy(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ alpha: Float, count: Int) {
        ds_axpy_f32(y, x, alpha, Int64(count))
    }

    public static func cpuFeatures() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        ds_cpu_features(&buf, 256)
        return String(cString: buf)
    }
}
