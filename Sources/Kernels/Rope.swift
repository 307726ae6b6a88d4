// Rotary position embeddings: cos/sin tables per position, rotation of heads in place (adjacent pairs
// or NeoX halves), linear scaling, frequency factors and YaRN.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which dims RoPE rotates together.
public enum RopeStyle: Sendable {
    /// Rotates adjacent pairs (x[2i], x[2i+1]) — llama.cpp's NORM (llama: converter permuted Q/K).
    case interleaved
    /// Rotates halves (x[i], x[i + d/2]) — NeoX / HF rotate_half (qwen2, qwen3, gemma3).
    case neox
}

/// YaRN context extension (rope.scaling.type = yarn): per rotary pair, the angle blends the
/// interpolated (pos / factor) and the original angle by a ramp over the pair index between the dims
/// that complete betaFast and betaSlow turns over the original context (ggml's rope_yarn).
public struct YarnConfig: Sendable {
    public var factor: Float
    public var originalContext: Int
    public var betaFast: Float
    public var betaSlow: Float
    public var extFactor: Float
    /// rope.scaling.yarn_log_multiplier as stored (DeepSeek: 0.1 · mscale_all_dim).
    public var logMultiplier: Float
    public init(factor: Float, originalContext: Int, betaFast: Float, betaSlow: Float, extFactor: Float, logMultiplier: Float) {
        self.factor = factor; self.originalContext = originalContext; self.betaFast = betaFast
        self.betaSlow = betaSlow; self.extFactor = extFactor; self.logMultiplier = logMultiplier
    }
}

/// Rotary position embedding tables for one base.
public struct Rope: @unchecked Sendable {
    public let dimensions: Int
    public let style: RopeStyle
    /// θ_i = base^(-2i/d) / freqFactor_i, i < d/2
    let inverseFrequencies: [Double]
    let positionScale: Double
    /// YaRN: weight of the original (extrapolated) angle per pair; 1 - ramp goes to pos/factor.
    let yarnRamp: [Double]?
    let yarnFactor: Double
    let magnitude: Float

    public init(dimensions: Int, base: Float, style: RopeStyle, scale: Float = 1, frequencyFactors: [Float]? = nil,
                yarn: YarnConfig? = nil, magnitude: Float = 1) {
        self.dimensions = dimensions
        self.style = style
        self.positionScale = 1 / Double(scale)
        self.magnitude = magnitude
        var inv: [Double] = []
        for i in 0..<(dimensions / 2) {
            var f = 1 / Double(base).pow(Double(2 * i) / Double(dimensions))
            if let ff = frequencyFactors, i < ff.count { f /= Double(ff[i]) }
            inv.append(f)
        }
        inverseFrequencies = inv
        if let y = yarn {
            // Pair index whose wavelength completes `turns` rotations over the original context.
            func correctionDim(_ turns: Double) -> Double {
                Double(dimensions) * log(Double(y.originalContext) / (turns * 2 * Double.pi)) / (2 * log(Double(base)))
            }
            let low = max(0, correctionDim(Double(y.betaFast)).rounded(.down))
            let high = min(Double(dimensions - 1), correctionDim(Double(y.betaSlow)).rounded(.up))
            yarnRamp = (0..<(dimensions / 2)).map { i in
                let t = (Double(i) - low) / max(0.001, high - low)
                return (1 - min(1, max(0, t))) * Double(y.extFactor)
            }
            yarnFactor = Double(y.factor)
        } else {
            yarnRamp = nil
            yarnFactor = 1
        }
    }

    /// table[0..<d/2] = m·cos(pos·θ_i), table[d/2..<d] = m·sin(pos·θ_i)  (m = magnitude)
    public func fill(_ table: UnsafeMutablePointer<Float>, position: Int) {
        let half = dimensions / 2
        let p = Double(position) * positionScale
        for i in 0..<half {
            var angle = p * inverseFrequencies[i]
            if let ramp = yarnRamp { angle = angle / yarnFactor * (1 - ramp[i]) + angle * ramp[i] }
            table[i] = Float(cos(angle)) * magnitude
            table[half + i] = Float(sin(angle)) * magnitude
        }
    }

    /// The inverse rotation (angle −θ) of `rotate`.
    public func rotateInverse(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, table: UnsafePointer<Float>) {
        rotate(x, heads: heads, headDim: headDim, table: table, sineSign: -1)
    }

    /// Rotates `heads` vectors of size headDim (stride headDim) in place with a table from `fill`.
    public func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, table: UnsafePointer<Float>, sineSign: Float = 1) {
        let half = dimensions / 2
        for hd in 0..<heads {
            let v = x + hd * headDim
            for i in 0..<half {
                let (a, b) = style == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                let c = table[i], s = sineSign * table[half + i]
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
@inline(__always) func Foundation_pow(_ a: Double, _ b: Double) -> Double { Glibc.pow(a, b) }
#elseif canImport(Darwin)
@inline(__always) func Foundation_pow(_ a: Double, _ b: Double) -> Double { Darwin.pow(a, b) }
#endif

