// Hyper-parameters read from GGUF metadata (`<arch>.*` keys), typed.

import GGUF

public enum RopeStyle: Sendable {
    /// Rotates adjacent pairs (x[2i], x[2i+1]) — llama.cpp's NORM (llama: converter permuted Q/K).
    case interleaved
    /// Rotates halves (x[i], x[i + d/2]) — NeoX / HF rotate_half (qwen2, qwen3, gemma3).
    case neox
}

public enum FFNActivation: Sendable { case silu, geluTanh }

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
    /// RoPE base of sliding-window layers (Gemma 3: 10 000); nil = ropeBase.
    public var ropeBaseSliding: Float?
    public var ropeDimensions: Int
    public var ropeStyle: RopeStyle
    /// Linear RoPE scaling: positions are divided by this factor (1 = none).
    public var ropeScale: Float
    /// Sliding window size of local layers, and which layers are local.
    public var slidingWindow: Int?
    public var slidingLayers: [Bool]
    /// Multiplier on q·k (default 1/sqrt(headDimK)).
    public var attentionScale: Float
    public var attentionLogitSoftcap: Float?
    public var finalLogitSoftcap: Float?
    /// Multiplier on the token embedding (Gemma: sqrt(embeddingLength)).
    public var embeddingScale: Float?
    public var activation: FFNActivation

    /// Reads the common keys; architecture files adjust the rest.
    public init(gguf: GGUFFile, architecture arch: String) throws {
        func req(_ key: String) throws -> Int {
            guard let v = gguf["\(arch).\(key)"]?.int else {
                throw ModelError.missingMetadata(file: gguf.path, key: "\(arch).\(key)")
            }
            return v
        }
        func opt(_ key: String) -> GGUFValue? { gguf["\(arch).\(key)"] }
        architecture = arch
        layerCount = try req("block_count")
        embeddingLength = try req("embedding_length")
        headCount = try req("attention.head_count")
        headCountKV = opt("attention.head_count_kv")?.int ?? headCount
        guard layerCount > 0, embeddingLength > 0, headCount > 0, headCountKV > 0, headCount % headCountKV == 0 else {
            throw ModelError.invalidConfig(file: gguf.path, message: "bad layer/head counts (layers \(layerCount), heads \(headCount)/\(headCountKV))")
        }
        headDimK = opt("attention.key_length")?.int ?? embeddingLength / headCount
        headDimV = opt("attention.value_length")?.int ?? headDimK
        feedForwardLength = try req("feed_forward_length")
        let tokens = gguf["tokenizer.ggml.tokens"]?.array?.count
        vocabularySize = opt("vocab_size")?.int ?? tokens ?? gguf.tensor(TensorName.tokenEmbedding.name)?.dims.last ?? 0
        contextLength = opt("context_length")?.int ?? 2048
        rmsEpsilon = opt("attention.layer_norm_rms_epsilon")?.float ?? 1e-5
        ropeBase = opt("rope.freq_base")?.float ?? 10000
        ropeBaseSliding = opt("rope.freq_base_swa")?.float
        ropeDimensions = opt("rope.dimension_count")?.int ?? headDimK
        ropeStyle = .interleaved
        var scale: Float = 1
        if let type = opt("rope.scaling.type")?.string, type == "linear", let f = opt("rope.scaling.factor")?.float, f > 0 { scale = f }
        ropeScale = scale
        slidingWindow = opt("attention.sliding_window")?.int
        slidingLayers = Array(repeating: false, count: layerCount)
        attentionScale = 1 / Float(headDimK).squareRoot()
        attentionLogitSoftcap = opt("attn_logit_softcapping")?.float
        finalLogitSoftcap = opt("final_logit_softcapping")?.float
        embeddingScale = nil
        activation = .silu
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
