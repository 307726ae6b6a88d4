// The named quantization mixes llama-quantize accepts (LLAMA_FTYPE_MOSTLY_*): each a base tensor type
// and a `general.file_type` id, the per-tensor rules of the K- and i-quant mixes living in MixRules.

import GGUF

public struct FileType: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// llama-quantize's name ("Q4_K_M").
    public let name: String
    /// general.file_type (llama_ftype).
    public let id: UInt32
    /// The type most tensors get.
    public let base: GGMLType

    public var description: String { name }

    public static let all: [FileType] = [
        FileType(name: "Q4_0", id: 2, base: .q4_0), FileType(name: "Q4_1", id: 3, base: .q4_1),
        FileType(name: "Q5_0", id: 8, base: .q5_0), FileType(name: "Q5_1", id: 9, base: .q5_1),
        FileType(name: "Q8_0", id: 7, base: .q8_0),
        FileType(name: "IQ2_XXS", id: 19, base: .iq2_xxs), FileType(name: "IQ2_XS", id: 20, base: .iq2_xs),
        FileType(name: "IQ2_S", id: 28, base: .iq2_xs), FileType(name: "IQ2_M", id: 29, base: .iq2_s),
        FileType(name: "IQ1_S", id: 24, base: .iq1_s), FileType(name: "IQ1_M", id: 31, base: .iq1_m),
        FileType(name: "Q2_K", id: 10, base: .q2_K), FileType(name: "Q2_K_S", id: 21, base: .q2_K),
        FileType(name: "IQ3_XXS", id: 23, base: .iq3_xxs), FileType(name: "IQ3_S", id: 26, base: .iq3_s),
        FileType(name: "IQ3_M", id: 27, base: .iq3_s), FileType(name: "IQ3_XS", id: 22, base: .iq3_s),
        FileType(name: "Q3_K_S", id: 11, base: .q3_K), FileType(name: "Q3_K_M", id: 12, base: .q3_K),
        FileType(name: "Q3_K_L", id: 13, base: .q3_K),
        FileType(name: "IQ4_NL", id: 25, base: .iq4_nl), FileType(name: "IQ4_XS", id: 30, base: .iq4_xs),
        FileType(name: "Q4_K_S", id: 14, base: .q4_K), FileType(name: "Q4_K_M", id: 15, base: .q4_K),
        FileType(name: "Q5_K_S", id: 16, base: .q5_K), FileType(name: "Q5_K_M", id: 17, base: .q5_K),
        FileType(name: "Q6_K", id: 18, base: .q6_K), FileType(name: "MXFP4_MOE", id: 38, base: .mxfp4),
        FileType(name: "F16", id: 1, base: .f16), FileType(name: "BF16", id: 32, base: .bf16), FileType(name: "F32", id: 0, base: .f32),
    ]

    /// Short names llama-quantize also takes.
    static let aliases: [String: String] = ["Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"]

    /// A mix by name (any case, aliases Q3_K/Q4_K/Q5_K) or by its file_type number.
    public static func named(_ text: String) -> FileType? {
        let upper = text.uppercased()
        let name = aliases[upper] ?? upper
        if let f = all.first(where: { $0.name == name }) { return f }
        if let n = UInt32(text) { return all.first { $0.id == n } }
        return nil
    }

    public static func byID(_ id: UInt32) -> FileType? { all.first { $0.id == id } }

    /// A float type: conversion, no mix rules.
    public var isFloat: Bool { base == .f16 || base == .bf16 || base == .f32 }

    static let q2_K = named("Q2_K")!, q2_K_S = named("Q2_K_S")!, q3_K_S = named("Q3_K_S")!, q3_K_M = named("Q3_K_M")!
    static let q3_K_L = named("Q3_K_L")!, q4_K_S = named("Q4_K_S")!, q4_K_M = named("Q4_K_M")!, q5_K_M = named("Q5_K_M")!
    static let iq2_xxs = named("IQ2_XXS")!, iq2_xs = named("IQ2_XS")!, iq2_s = named("IQ2_S")!, iq2_m = named("IQ2_M")!
    static let iq1_s = named("IQ1_S")!, iq1_m = named("IQ1_M")!, iq3_xxs = named("IQ3_XXS")!, iq3_xs = named("IQ3_XS")!
    static let iq3_s = named("IQ3_S")!, iq3_m = named("IQ3_M")!, iq4_nl = named("IQ4_NL")!, iq4_xs = named("IQ4_XS")!
    static let q4_0 = named("Q4_0")!, q5_0 = named("Q5_0")!, mxfp4 = named("MXFP4_MOE")!
}

extension GGMLType {
    /// Parses a tensor type name as llama-quantize's --tensor-type takes it ("q4_K", "IQ4_NL", "f16").
    public static func named(_ text: String) -> GGMLType? {
        let upper = text.uppercased()
        return GGMLType.allCases.first { $0.name.uppercased() == upper }
    }

    /// The i-quants whose quantizers need an importance matrix (llama-quantize refuses them without one).
    var needsImportance: Bool { [.iq3_xxs, .iq2_xxs, .iq2_xs, .iq2_s, .iq1_m, .iq1_s].contains(self) }
}
