// Hyper-parameters read from GGUF metadata (`<arch>.*` keys), typed.

import GGUF
import Kernels
import KVCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum FFNActivation: Sendable { case silu, geluTanh }

/// Llama 4's attention temperature on NoPE layers: q ×= 1 + scale · log(floor((pos + offset) / floor) + 1).
public struct AttentionTemperature: Sendable {
    public var scale: Float
    public var floorLength: Float
    public var offset: Float
    public init(scale: Float, floorLength: Float, offset: Float) {
        self.scale = scale; self.floorLength = floorLength; self.offset = offset
    }
    public func factor(position: Int) -> Float {
        1 + scale * Float(log(Double(((Float(position) + offset) / floorLength).rounded(.down)) + 1))
    }
}

/// What every architecture's metadata says in the same keys (`<arch>.*`): sizes, norms, RoPE and
/// context. An architecture file may adjust them (and reads the rest into its own stack's config).
public struct ModelConfig: Sendable {
    public var architecture: String
    public var layerCount: Int
    public var embeddingLength: Int
    public var headCount: Int
    public var headCountKV: Int
    public var headDimK: Int
    public var headDimV: Int
    public var feedForwardLength: Int
    public var vocabularySize: Int
    public var contextLength: Int
    public var rmsEpsilon: Float
    public var ropeBase: Float
    /// How dense matrices are held (a load option, not read from the file): packed where the CPU can.
    public var weightLayout: WeightLayout = .rowMajor
    /// RoPE base of sliding-window layers (Gemma 3: 10 000); nil = ropeBase.
    public var ropeBaseSliding: Float?
    public var ropeDimensions: Int
    /// Linear RoPE scaling: positions are divided by this factor (1 = none).
    public var ropeScale: Float
    /// YaRN scaling (nil: none), and the factor on RoPE's cos/sin (YaRN: 1 + 0.1 ln factor, except
    /// where the softmax scale carries it instead, as in DeepSeek's MLA).
    public var yarn: YarnConfig?
    public var ropeMagnitude: Float
    /// Sliding window size of local layers (attention.sliding_window).
    public var slidingWindow: Int?
    public var attentionLogitSoftcap: Float?
    public var finalLogitSoftcap: Float?
    /// Multiplier on the token embedding (Gemma: sqrt(embeddingLength)).
    public var embeddingScale: Float?
    /// Multi-token-prediction layers stored after the trunk (GLM-4.5 nextn): loaded and ignored.
    public var nextNLayers: Int

    /// Reads the common keys; architecture files adjust the rest.
    public init(gguf: GGUFFile, architecture arch: String) throws {
        let meta = ArchitectureMetadata(gguf, architecture: arch)
        func req(_ key: String) throws -> Int { try meta.required(key) }
        func opt(_ key: String) -> GGUFValue? { meta[key] }
        architecture = arch
        layerCount = try req("block_count")
        embeddingLength = try req("embedding_length")
        headCount = try req("attention.head_count")
        headCountKV = opt("attention.head_count_kv")?.int ?? headCount
        guard layerCount > 0, embeddingLength > 0, headCount > 0, headCountKV > 0, headCount % headCountKV == 0 else {
            throw ModelError.invalidConfig(file: gguf.path, message: "bad layer/head counts (layers \(layerCount), heads \(headCount)/\(headCountKV))")
        }
        // Every layer has tensors: a block count beyond the tensor count is a damaged or hostile file (and
        // would size the per-layer tables below before any tensor is looked at).
        guard layerCount <= gguf.tensors.count else {
            throw ModelError.invalidConfig(file: gguf.path, message: "block_count \(layerCount) is more than the file's \(gguf.tensors.count) tensors")
        }
        headDimK = opt("attention.key_length")?.int ?? embeddingLength / headCount
        headDimV = opt("attention.value_length")?.int ?? headDimK
        // MoE-only models (DeepSeek V4) have no dense FFN width.
        feedForwardLength = opt("feed_forward_length")?.int ?? opt("expert_feed_forward_length")?.int ?? 0
        let tokens = gguf["tokenizer.ggml.tokens"]?.array?.count
        vocabularySize = opt("vocab_size")?.int ?? tokens ?? gguf.tensor(TensorName.tokenEmbedding.name)?.dims.last ?? 0
        contextLength = opt("context_length")?.int ?? 2048
        rmsEpsilon = opt("attention.layer_norm_rms_epsilon")?.float ?? 1e-5
        ropeBase = opt("rope.freq_base")?.float ?? 10000
        ropeBaseSliding = opt("rope.freq_base_swa")?.float
        ropeDimensions = opt("rope.dimension_count")?.int ?? headDimK
        var scale: Float = 1
        if let type = opt("rope.scaling.type")?.string, type == "linear", let f = opt("rope.scaling.factor")?.float, f > 0 { scale = f }
        ropeScale = scale
        yarn = nil
        ropeMagnitude = 1
        if let type = opt("rope.scaling.type")?.string, type == "yarn", let f = opt("rope.scaling.factor")?.float, f > 1 {
            let y = YarnConfig(factor: f, originalContext: opt("rope.scaling.original_context_length")?.int ?? contextLength,
                               betaFast: opt("rope.scaling.yarn_beta_fast")?.float ?? 32,
                               betaSlow: opt("rope.scaling.yarn_beta_slow")?.float ?? 1,
                               extFactor: opt("rope.scaling.yarn_ext_factor")?.float ?? 1,
                               logMultiplier: opt("rope.scaling.yarn_log_multiplier")?.float ?? 0)
            yarn = y
            ropeMagnitude = (opt("rope.scaling.attn_factor")?.float ?? 1) * (1 + 0.1 * Float(log(Double(f))))
        }
        slidingWindow = opt("attention.sliding_window")?.int
        attentionLogitSoftcap = opt("attn_logit_softcapping")?.float
        finalLogitSoftcap = opt("final_logit_softcapping")?.float
        embeddingScale = nil
        nextNLayers = opt("nextn_predict_layers")?.int ?? 0
        if nextNLayers > 0 && nextNLayers < layerCount { layerCount -= nextNLayers } else { nextNLayers = 0 }
    }
}

public enum ModelError: Error, CustomStringConvertible {
    case missingMetadata(file: String, key: String)
    case missingTensor(file: String, name: String)
    case badTensorShape(file: String, name: String, expected: [Int], got: [Int])
    case unsupportedTensorType(file: String, name: String, type: String)
    case unsupportedArchitecture(file: String, architecture: String, supported: [String])
    case invalidConfig(file: String, message: String)

    public var description: String {
        switch self {
        case .missingMetadata(let f, let k): return "\(f): missing metadata key \(k)"
        case .missingTensor(let f, let n): return "\(f): missing tensor \(n)"
        case .badTensorShape(let f, let n, let e, let g): return "\(f): tensor \(n) has shape \(g), expected \(e)"
        case .unsupportedTensorType(let f, let n, let t): return "\(f): tensor \(n) has type \(t), which this build cannot compute with"
        case .unsupportedArchitecture(let f, let a, let s):
            return "\(f): unsupported architecture '\(a)'. Supported: \(s.joined(separator: ", "))"
        case .invalidConfig(let f, let m): return "\(f): \(m)"
        }
    }
}
