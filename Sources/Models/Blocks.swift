// Shared building blocks: RoPE, per-head RMSNorm, causal (optionally sliding-window) attention over
// the KV cache.

import CKernels
import Kernels

/// Rotary position embedding tables for one base.
public struct Rope: @unchecked Sendable {
    public let dimensions: Int
    public let style: RopeStyle
    /// θ_i = base^(-2i/d) / freqFactor_i, i < d/2
    let inverseFrequencies: [Double]
    let positionScale: Double

    public init(dimensions: Int, base: Float, style: RopeStyle, scale: Float = 1, frequencyFactors: [Float]? = nil) {
        self.dimensions = dimensions
        self.style = style
        self.positionScale = 1 / Double(scale)
        var inv: [Double] = []
        for i in 0..<(dimensions / 2) {
            var f = 1 / Double(base).pow(Double(2 * i) / Double(dimensions))
            if let ff = frequencyFactors, i < ff.count { f /= Double(ff[i]) }
            inv.append(f)
        }
        inverseFrequencies = inv
    }

    /// table[0..<d/2] = cos(pos·θ_i), table[d/2..<d] = sin(pos·θ_i)
    public func fill(_ table: UnsafeMutablePointer<Float>, position: Int) {
        let half = dimensions / 2
        let p = Double(position) * positionScale
        for i in 0..<half {
            let angle = p * inverseFrequencies[i]
            table[i] = Float(cos(angle))
            table[half + i] = Float(sin(angle))
        }
    }

    /// Rotates `heads` vectors of size headDim (stride headDim) in place with a table from `fill`.
    public func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, table: UnsafePointer<Float>) {
        let half = dimensions / 2
        for hd in 0..<heads {
            let v = x + hd * headDim
            for i in 0..<half {
                let (a, b) = style == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                let c = table[i], s = table[half + i]
                let x0 = v[a], x1 = v[b]
                v[a] = x0 * c - x1 * s
                v[b] = x0 * s + x1 * c
            }
        }
    }
}

extension Double {
    @inline(__always) func pow(_ e: Double) -> Double { Foundation_pow(self, e) }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func Foundation_pow(_ a: Double, _ b: Double) -> Double { Glibc.pow(a, b) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func Foundation_pow(_ a: Double, _ b: Double) -> Double { Darwin.pow(a, b) }
#endif

/// Contiguous KV cache: per layer K[ctx, kvHeads*headDimK] and V[ctx, kvHeads*headDimV], F32.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let capacity: Int
    public let kRowFloats: Int
    public let vRowFloats: Int
    let k: [UnsafeMutablePointer<Float>]
    let v: [UnsafeMutablePointer<Float>]
    /// Number of positions holding valid entries.
    public var count = 0

    public init(layers: Int, capacity: Int, kRowFloats: Int, vRowFloats: Int) {
        self.layers = layers; self.capacity = capacity; self.kRowFloats = kRowFloats; self.vRowFloats = vRowFloats
        // calloc: large blocks come from fresh zero pages, so untouched context costs no RAM.
        k = (0..<layers).map { _ in calloc(capacity * kRowFloats, 4)!.assumingMemoryBound(to: Float.self) }
        v = (0..<layers).map { _ in calloc(capacity * vRowFloats, 4)!.assumingMemoryBound(to: Float.self) }
    }
    deinit { for p in k { free(p) }; for p in v { free(p) } }

    public var bytes: Int { layers * capacity * (kRowFloats + vRowFloats) * 4 }

    /// Drops positions ≥ length (rollback / new branch of a conversation).
    public func truncate(to length: Int) { count = min(count, max(0, length)) }
}

enum AttentionBlock {
    /// att[t, h, :] = softmax(scale · q[t,h]·K[j]ᵀ) V[j] over j ≤ pos_t (and pos_t - j < window).
    static func attend(q: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>, tokens: Int, startPosition: Int,
                       cache: KVCache, layer: Int, config c: ModelConfig, window: Int?, pool: WorkerPool,
                       scratch: UnsafeMutablePointer<Float>, scratchStride: Int) {
        let heads = c.headCount, group = c.headCount / c.headCountKV
        let dk = c.headDimK, dv = c.headDimV
        let kBase = cache.k[layer], vBase = cache.v[layer]
        let kStride = cache.kRowFloats, vStride = cache.vRowFloats
        let scale = c.attentionScale, softcap = c.attentionLogitSoftcap ?? 0
        // Enough (token, KV head) pairs to keep every thread busy: one task per pair, reading each K/V
        // row once for the whole query group. Otherwise (decode) one task per query head.
        if tokens * c.headCountKV >= 2 * pool.threads {
            let kvHeads = c.headCountKV
            pool.run { ith, nth in
                let tasks = tokens * kvHeads
                let s = scratch + ith * scratchStride
                for task in stride(from: ith, to: tasks, by: nth) {  // interleaved: causal cost grows with t
                    let t = task / kvHeads, kvh = task % kvHeads
                    let pos = startPosition + t
                    let jBegin = window.map { max(0, pos - $0 + 1) } ?? 0
                    let h0 = kvh * group
                    ds_attend_group_f32(q + (t * heads + h0) * dk, Int64(group), Int64(dk), kBase + kvh * dk, Int64(kStride),
                                        vBase + kvh * dv, Int64(vStride), Int64(jBegin), Int64(pos + 1), Int64(dk),
                                        scale, softcap, att + (t * heads + h0) * dv, Int64(dv), s)
                }
            }
            return
        }
        pool.run { ith, nth in
            let tasks = tokens * heads
            let s = scratch + ith * scratchStride
            for task in stride(from: ith, to: tasks, by: nth) {
                let t = task / heads, h = task % heads
                let pos = startPosition + t
                let jBegin = window.map { max(0, pos - $0 + 1) } ?? 0
                let kvh = h / group
                ds_attend_head_f32(q + (t * heads + h) * dk, kBase + kvh * dk, Int64(kStride),
                                   vBase + kvh * dv, Int64(vStride), Int64(jBegin), Int64(pos + 1),
                                   Int64(dk), scale, softcap, att + (t * heads + h) * dv, s)
            }
        }
    }
}
