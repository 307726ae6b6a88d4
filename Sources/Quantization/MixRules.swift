// Which type each tensor of a file gets under a named mix: llama-quantize's choices, rule for rule
// (its tensor order, counters, architecture exceptions, --tensor-type overrides and the fallback for
// rows that the chosen type's blocks do not divide), so that a DwarfStar Q4_K_M is llama.cpp's Q4_K_M.

import Foundation
import GGUF

/// What decided a tensor's type (for the summary).
public enum TypeReason: String, Sendable {
    case kept = "kept"                  // not a quantizable weight (norms, 1-D, router): copied as is
    case mix = "mix"                    // the mix's rules
    case override = "--tensor-type"     // a --tensor-type pattern
    case outputOption = "--output-tensor-type"
    case embeddingOption = "--token-embedding-type"
    case allocation = "allocation"      // the adaptive allocation (Allocation.swift)
}

public struct TensorChoice: Sendable {
    public let tensor: GGUFTensorInfo
    public var type: GGMLType
    public var reason: TypeReason
    /// The type the rules chose when the row length forced another one (the fallback), else nil.
    public var fallbackFrom: GGMLType?
}

/// The options of llama-quantize that change types.
public struct MixOptions: Sendable {
    /// --tensor-type REGEX=TYPE in command-line order (the first pattern found in a name wins).
    public var tensorTypes: [(pattern: String, type: GGMLType)] = []
    public var outputTensorType: GGMLType?
    public var tokenEmbeddingType: GGMLType?
    /// --pure: the base type everywhere (the fallback still applies).
    public var pure = false
    /// --leave-output-tensor: output.weight copied as is.
    public var leaveOutputTensor = false
    /// An importance matrix is given (changes IQ3_XXS, IQ4_* and Q4_0/Q5_0 choices).
    public var hasImportance = false
    public init() {}

    /// Parses "REGEX=TYPE" (the pattern lower-cased, as llama-quantize does).
    public static func parseTensorType(_ text: String) throws -> (pattern: String, type: GGMLType) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex, text.index(after: eq) != text.endIndex else {
            throw QuantizeError.badArgument("--tensor-type wants REGEX=TYPE, got '\(text)'")
        }
        let pattern = String(text[..<eq]).lowercased(), typeName = String(text[text.index(after: eq)...])
        guard let type = GGMLType.named(typeName) else { throw QuantizeError.badArgument("--tensor-type: unknown type '\(typeName)'") }
        do { _ = try NSRegularExpression(pattern: pattern) } catch {
            throw QuantizeError.badArgument("--tensor-type: bad pattern '\(pattern)'")
        }
        return (pattern, type)
    }
}

public enum QuantizeError: Error, CustomStringConvertible {
    case badArgument(String)
    case needsImportance(tensor: String, type: GGMLType)
    case importanceSize(tensor: String, got: Int, want: Int)
    case unsupported(String)
    case budget(String)

    public var description: String {
        switch self {
        case .badArgument(let m): return m
        case .needsImportance(let t, let type):
            return "\(t) would be \(type.name), whose quantizer needs an importance matrix: pass --imatrix FILE (make one with `dwarfstar imatrix`)"
        case .importanceSize(let t, let got, let want): return "the importance matrix has \(got) values for \(t), which needs \(want)"
        case .unsupported(let m): return m
        case .budget(let m): return m
        }
    }
}

/// The model facts the rules look at (read from the file's metadata).
struct MixHyperparameters {
    let architecture: String
    let expertCount: Int
    let gqa: Int
    let layerCount: Int
    let is70B: Bool

    init(_ file: GGUFFile) {
        let arch = file.architecture ?? ""
        architecture = arch
        func first(_ key: String) -> Int? {
            guard let v = file["\(arch).\(key)"] else { return nil }
            return v.int ?? v.array?.first?.int
        }
        expertCount = first("expert_count") ?? 0
        let heads = first("attention.head_count") ?? 0
        let kvHeads = first("attention.head_count_kv") ?? heads
        gqa = kvHeads == 0 ? 0 : heads / kvHeads
        layerCount = first("block_count") ?? 0
        switch arch {
        case "llama": is70B = layerCount == 80 && heads != kvHeads
        case "qwen2", "deci", "olmo": is70B = layerCount == 80
        case "jais2": is70B = layerCount == 68
        default: is70B = false
        }
    }
}

enum TensorCategory {
    case output, tokenEmbedding, qkv, kvB, v, k, q, attentionOutput, ffnUp, ffnGate, ffnDown, other

    init(_ name: String) {
        if name == "output.weight" { self = .output }
        else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" { self = .tokenEmbedding }
        else if name.contains("attn_qkv.weight") { self = .qkv }
        else if name.contains("attn_kv_b.weight") { self = .kvB }
        else if name.contains("attn_v.weight") { self = .v }
        else if name.contains("attn_k.weight") { self = .k }
        else if name.contains("attn_q.weight") { self = .q }
        else if name.contains("attn_output.weight") { self = .attentionOutput }
        else if name.contains("ffn_up") { self = .ffnUp }
        else if name.contains("ffn_gate") { self = .ffnGate }
        else if name.contains("ffn_down") { self = .ffnDown }
        else { self = .other }
    }

    var isValueLike: Bool { self == .v || self == .qkv || self == .kvB }
}

public enum MixRules {
    /// The layer of "blk.N.…" (−1 for other tensors).
    static func layer(_ name: String) -> Int {
        guard name.hasPrefix("blk.") else { return -1 }
        let digits = name.dropFirst(4).prefix { $0.isNumber }
        return name.dropFirst(4 + digits.count).first == "." ? Int(digits) ?? -1 : -1
    }

    /// llama-quantize's tensor order: non-layer tensors first, then by layer, then by name (bytewise).
    public static func ordered(_ tensors: [GGUFTensorInfo]) -> [GGUFTensorInfo] {
        tensors.sorted { a, b in
            let la = layer(a.name), lb = layer(b.name)
            if la != lb { return la < lb }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
    }

    /// Whether llama-quantize quantizes this tensor at all (2-D or stacked 3-D weights, not norms,
    /// routers, position embeddings, convolutions, indexer projections…).
    public static func isQuantizable(_ t: GGUFTensorInfo, leaveOutput: Bool = false) -> Bool {
        let n = t.name
        guard t.dims.dropFirst().contains(where: { $0 > 1 }), n.hasSuffix("weight") else { return false }   // ggml_n_dims ≥ 2
        if n.contains("_norm.weight") || (leaveOutput && n == "output.weight") { return false }
        let excludedParts = ["ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj", "ssm_conv1d",
                             "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight", "attn_rel_b.weight",
                             ".position_embd", ".rel_pos", ".patch_embd", ".patch_merger"]
        if excludedParts.contains(where: { n.contains($0) }) { return false }
        if n == "position_embd.weight" || n == "token_types.weight" { return false }
        return true
    }

    /// The fallback for a row length the type's blocks do not divide (llama-quantize's table).
    public static func fallback(_ type: GGMLType, rowLength: Int) -> GGMLType {
        guard rowLength % type.blockSize != 0 else { return type }
        var f: GGMLType
        switch type {
        case .iq1_s, .iq1_m, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq4_xs: f = .iq4_nl
        case .q2_K, .q3_K, .tq1_0, .tq2_0: f = .q4_0
        case .q4_K: f = .q5_0
        case .q5_K: f = .q5_1
        case .q6_K: f = .q8_0
        default: f = type
        }
        if rowLength % f.blockSize != 0 { f = .f16 }
        return f
    }

    /// Every tensor's type under `mix`, in llama-quantize's order.
    public static func choose(_ file: GGUFFile, mix: FileType, options: MixOptions) -> [TensorChoice] {
        let hp = MixHyperparameters(file)
        let tensors = ordered(file.tensors)
        var state = Counters(valueLike: tensors.filter { TensorCategory($0.name).isValueLike }.count, layers: hp.layerCount)
        let tied = !file.tensors.contains { $0.name == "output.weight" }
        let patterns = options.tensorTypes.compactMap { p in (try? NSRegularExpression(pattern: p.pattern)).map { ($0, p.type) } }
        return tensors.map { t in
            guard isQuantizable(t, leaveOutput: options.leaveOutputTensor) else { return TensorChoice(tensor: t, type: t.type, reason: .kept) }
            let category = TensorCategory(t.name)
            if let e = options.tokenEmbeddingType, category == .tokenEmbedding,
               !(t.name == "per_layer_token_embd.weight" && patterns.contains(where: { matches($0.0, t.name) })) {
                return TensorChoice(tensor: t, type: e, reason: .embeddingOption)
            }
            if let o = options.outputTensorType, category == .output { return TensorChoice(tensor: t, type: o, reason: .outputOption) }
            var type = mix.base
            var reason = TypeReason.mix
            guard !mix.isFloat else { return TensorChoice(tensor: t, type: type, reason: reason) }
            if let manual = patterns.first(where: { matches($0.0, t.name) }) {
                type = manual.1
                reason = .override
            } else if !options.pure {
                type = rule(type, t, category, mix, hp, tied, options, &state)
            }
            let f = fallback(type, rowLength: t.rowLength)
            return TensorChoice(tensor: t, type: f, reason: reason, fallbackFrom: f != type ? type : nil)
        }
    }

    static func matches(_ r: NSRegularExpression, _ s: String) -> Bool {
        r.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    struct Counters {
        let valueLike: Int
        let layers: Int
        var value = 0, down = 0, gate = 0, up = 0
        init(valueLike: Int, layers: Int) { self.valueLike = valueLike; self.layers = layers }
    }

    public static func useMoreBits(_ i: Int, _ n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }
}
