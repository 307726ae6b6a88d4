// llama-quantize's per-tensor rules of the K- and i-quant mixes (llama_tensor_get_type), in its
// order: output and tied embeddings, the low-bit i-quant mixes, attention V (and QKV, KV_B), K, Q,
// FFN down with its layer-dependent extra bits, attention output, FFN gate and up.

import GGUF

extension MixRules {
    static func rule(_ base: GGMLType, _ t: GGUFTensorInfo, _ category: TensorCategory, _ mix: FileType, _ hp: MixHyperparameters,
                     _ tied: Bool, _ options: MixOptions, _ c: inout Counters) -> GGMLType {
        var type = base
        let lowIQ: Set<FileType> = [.iq2_xxs, .iq2_xs, .iq1_s, .iq2_s, .iq2_m, .iq1_m]
        let iq2sm: Set<FileType> = [.iq2_s, .iq2_m]
        let moe = max(1, hp.expertCount) > 1
        // (layer, layers) of a FFN tensor: the blk number for MoE models, else the running count.
        func layerInfo(_ counter: Int) -> (Int, Int) { (moe ? max(0, layer(t.name)) : counter, c.layers) }

        if category == .output || (tied && category == .tokenEmbedding) {
            if let o = options.outputTensorType { return o }
            if mix == .mxfp4 { return .q8_0 }
            if hp.architecture == "falcon" || t.rowLength % base.blockSize != 0 { return .q8_0 }
            if [.iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq2_s, .iq2_m, .iq1_m].contains(mix) { return .q5_K }
            return type != .q8_0 ? .q6_K : type
        }
        if mix == .mxfp4 {
            return t.dims.count > 2 && t.dims[2] > 1 ? .mxfp4 : .q8_0
        }
        if category == .tokenEmbedding {
            if let e = options.tokenEmbeddingType { return e }
            if [.iq2_xxs, .iq2_xs, .iq1_s, .iq1_m].contains(mix) { return .q2_K }
            if [.iq2_s, .iq2_m, .iq3_xxs].contains(mix) { return .iq3_s }
            return type
        }
        if lowIQ.contains(mix) {
            if category.isValueLike {
                type = hp.gqa >= 4 || hp.expertCount >= 4 ? .q4_K : (iq2sm.contains(mix) ? .iq3_s : .q2_K)
                c.value += 1
            } else if hp.expertCount == 8 && category == .k {
                type = .q4_K
            } else if category == .ffnDown {
                if c.down < c.layers / 8 { type = iq2sm.contains(mix) ? .iq3_s : .q2_K }
                c.down += 1
            } else if category == .attentionOutput {
                if hp.expertCount == 8 { type = .q5_K }
                else if mix == .iq1_s || mix == .iq1_m { type = .iq2_xxs }
                else if iq2sm.contains(mix) { type = .iq3_s }
            }
            return type
        }
        switch category {
        case .v, .qkv, .kvB:
            type = valueType(type, mix, hp, options, c)
            if hp.is70B && (type == .q3_K || type == .q4_K) { type = .q5_K }
            if hp.expertCount == 8 { type = .q8_0 }
            c.value += 1
        case .k:
            if hp.expertCount == 8 { type = .q8_0 } else if mix == .iq3_xs { type = .iq3_xxs } else if mix == .iq3_xxs { type = .iq2_s }
        case .q:
            if mix == .iq3_xs { type = .iq3_xxs } else if mix == .iq3_xxs { type = .iq2_s }
        case .ffnDown:
            let (i, n) = layerInfo(c.down)
            type = downType(type, mix, hp, options, i, n)
            c.down += 1
        case .attentionOutput:
            if hp.architecture != "falcon" {
                if hp.expertCount == 8 {
                    let five: Set<FileType> = [.q2_K, .iq3_xs, .iq3_xxs, .q3_K_S, .q3_K_M, .iq4_nl, .q4_K_S, .q4_K_M, .iq3_s, .iq3_m, .iq4_xs]
                    if five.contains(mix) { type = .q5_K }
                } else {
                    switch mix {
                    case .q2_K: type = .q3_K
                    case .iq3_xxs: type = .iq3_s
                    case .q3_K_M: type = .q4_K
                    case .q3_K_L: type = .q5_K
                    case .iq3_m: type = .q4_K
                    default: break
                    }
                }
            } else if mix == .q3_K_L {
                type = .q4_K
            }
        case .ffnGate, .ffnUp:
            let counter = category == .ffnGate ? c.gate : c.up
            let (i, n) = layerInfo(counter)
            if mix == .iq3_xs && i >= n / 8 && i < 7 * n / 8 { type = .iq3_xxs }
            if category == .ffnGate { c.gate += 1 } else { c.up += 1 }
        default:
            break
        }
        return type
    }

    static func valueType(_ type: GGMLType, _ mix: FileType, _ hp: MixHyperparameters, _ options: MixOptions, _ c: Counters) -> GGMLType {
        let g4 = hp.gqa >= 4
        switch mix {
        case .q2_K: return g4 ? .q4_K : .q3_K
        case .q2_K_S where g4: return .q4_K
        case .iq3_xxs: return g4 ? .q4_K : (!options.hasImportance ? .iq3_s : .iq3_xxs)
        case .iq3_xs where g4, .iq3_s where g4: return .q4_K
        case .iq3_m: return .q4_K
        case .q3_K_M: return c.value < 2 ? .q5_K : .q4_K
        case .q3_K_L: return .q5_K
        case .iq4_nl where g4, .iq4_xs where g4: return .q5_K
        case .q4_K_M where useMoreBits(c.value, c.valueLike), .q5_K_M where useMoreBits(c.value, c.valueLike): return .q6_K
        case .q4_K_S where c.value < 4: return .q5_K
        default: return type
        }
    }

    static func downType(_ type: GGMLType, _ mix: FileType, _ hp: MixHyperparameters, _ options: MixOptions, _ i: Int, _ n: Int) -> GGMLType {
        let falcon = hp.architecture == "falcon"
        switch mix {
        case .q2_K: return .q3_K
        case .q2_K_S: return i < n / 8 ? .q4_K : type
        case .iq3_xxs where !options.hasImportance: return i < n / 8 ? .q4_K : .q3_K
        case .q3_K_M: return i < n / 16 ? .q5_K : (!falcon || useMoreBits(i, n)) ? .q4_K : .q3_K
        case .iq3_m where i < n / 8 || (hp.expertCount == 8 && useMoreBits(i, n)): return .q4_K
        case .q3_K_L: return falcon ? .q4_K : .q5_K
        case .q4_K_M:
            if falcon { return i < n / 16 ? .q6_K : useMoreBits(i, n) ? .q5_K : .q4_K }
            return useMoreBits(i, n) ? .q6_K : type
        case .iq4_nl where i < n / 8 && !options.hasImportance, .iq4_xs where i < n / 8 && !options.hasImportance: return .q5_K
        case .q5_K_M where useMoreBits(i, n): return .q6_K
        case .q4_K_S where !falcon && i < n / 8: return .q5_K
        case .q4_0 where options.hasImportance && i < n / 8: return .q4_1
        case .q5_0 where options.hasImportance && i < n / 8: return .q5_1
        default: return type
        }
    }
}
