// Tensor element types with ggml's numbering (the value stored in a GGUF tensor-info record).

public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1
    case q4_0 = 2, q4_1 = 3
    case q5_0 = 6, q5_1 = 7
    case q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28
    case bf16 = 30
    // Types the reader knows the layout of (inspect, validation) but the kernels may not compute.
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case iq1_m = 29, tq1_0 = 34, tq2_0 = 35, mxfp4 = 39

    /// Elements per quantization block (1 for plain types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return 256
        case .iq4_nl, .mxfp4: return 32
        case .iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq3_s, .iq2_s, .iq4_xs, .iq1_m, .tq1_0, .tq2_0: return 256
        }
    }

    /// Bytes per block (ggml's type_size).
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q4_0: return 2 + 16
        case .q4_1: return 4 + 16
        case .q5_0: return 2 + 4 + 16
        case .q5_1: return 4 + 4 + 16
        case .q8_0: return 2 + 32
        case .q8_1: return 4 + 32
        case .q2_K: return 16 + 64 + 4
        case .q3_K: return 32 + 64 + 12 + 2
        case .q4_K: return 4 + 12 + 128
        case .q5_K: return 4 + 12 + 32 + 128
        case .q6_K: return 128 + 64 + 16 + 2
        case .q8_K: return 4 + 256 + 32
        case .iq2_xxs: return 2 + 64
        case .iq2_xs: return 2 + 64 + 8
        case .iq3_xxs: return 2 + 96
        case .iq1_s: return 2 + 32 + 16
        case .iq4_nl: return 2 + 16
        case .iq3_s: return 2 + 64 + 8 + 32 + 4
        case .iq2_s: return 2 + 64 + 8 + 8
        case .iq4_xs: return 2 + 2 + 4 + 128
        case .iq1_m: return 32 + 16 + 8
        case .tq1_0: return 48 + 4 + 2
        case .tq2_0: return 64 + 2
        case .mxfp4: return 1 + 16
        }
    }

    /// Bytes of `count` elements (count must be a multiple of blockSize; nil on overflow).
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (r, o) = (count / blockSize).multipliedReportingOverflow(by: blockBytes)
        return o ? nil : r
    }

    public var name: String {
        switch self {
        case .f32: return "F32"; case .f16: return "F16"; case .bf16: return "BF16"
        case .q4_0: return "Q4_0"; case .q4_1: return "Q4_1"; case .q5_0: return "Q5_0"; case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"; case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"; case .q3_K: return "Q3_K"; case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"; case .q6_K: return "Q6_K"; case .q8_K: return "Q8_K"
        case .i8: return "I8"; case .i16: return "I16"; case .i32: return "I32"; case .i64: return "I64"; case .f64: return "F64"
        case .iq2_xxs: return "IQ2_XXS"; case .iq2_xs: return "IQ2_XS"; case .iq3_xxs: return "IQ3_XXS"; case .iq1_s: return "IQ1_S"
        case .iq4_nl: return "IQ4_NL"; case .iq3_s: return "IQ3_S"; case .iq2_s: return "IQ2_S"; case .iq4_xs: return "IQ4_XS"
        case .iq1_m: return "IQ1_M"; case .tq1_0: return "TQ1_0"; case .tq2_0: return "TQ2_0"; case .mxfp4: return "MXFP4"
        }
    }
    public var description: String { name }

    public init?(name: String) {
        guard let t = GGMLType.allCases.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }
}
