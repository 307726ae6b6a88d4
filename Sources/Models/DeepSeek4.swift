// deepseek4 (DeepSeek V4): the residual is `streams` parallel copies mixed by hyper-connections
// (HyperConnections in DeepSeek4Forward.swift), attention is single-KV-head (K = V) over a sliding window of raw rows plus
// compressed entries (CompressedAttention.swift): per layer a compress ratio of 0 (window only), 4
// (CSA: overlapping windows of 8 pooled into one entry per 4 tokens; a lightning indexer keeps the
// top_k entries per query) or 128 (HCA: one entry per 128 tokens, all visible); attention sinks; the
// output is de-rotated and projected by a grouped low-rank product; MoE with sqrt-softplus routing
// (hash-routed by token id in the first layers) and clamped SwiGLU. Spec: docs/models/deepseek4.md.

import GGUF
import Kernels
import KVCache

public struct DeepSeek4Config: Sendable {
    /// Hyper-connection streams (hc), Sinkhorn iterations and epsilon.
    public var streams: Int
    public var sinkhornIterations: Int
    public var hcEpsilon: Float
    public var qLoraRank: Int
    /// Width of the single K = V head (and of each query head).
    public var headDim: Int
    /// The last ropeDim dims of every head are rotated (interleaved pairs).
    public var ropeDim: Int
    /// Raw rows a query sees: positions p − window + 1 … p.
    public var window: Int
    /// Per layer: 0 (window only), 4 (CSA) or 128 (HCA).
    public var compressRatios: [Int]
    public var indexerHeads: Int
    public var indexerHeadDim: Int
    public var indexerTopK: Int
    public var outputGroups: Int
    public var outputRank: Int
    public var mainRopeBase: Float
    public var compressRopeBase: Float
    /// YaRN of the compressed layers' RoPE (magnitude 1: DeepSeek V4 cancels YaRN's mscale).
    public var compressYarn: YarnConfig?
    /// Per layer SwiGLU clamp limits (routed, shared).
    public var swigluLimits: [Float]
    public var sharedSwigluLimits: [Float]
    /// Layers [0, hashLayers) route by token id.
    public var hashLayers: Int
    /// Per layer: a CSA layer (overlapping compressor + lightning indexer; its file has the indexer's tensors).
    public var csaLayers: [Bool] = []

    /// Bytes per position the compressed entries and indexer keys add (elementBytes each).
    public func compressedBytesPerPosition(elementBytes: Int) -> Double {
        var total = 0.0
        for (l, ratio) in compressRatios.enumerated() where ratio > 0 {
            total += Double((headDim + (csaLayers[l] ? indexerHeadDim : 0)) * elementBytes) / Double(ratio)
        }
        return total
    }

    /// Bytes of a sequence's cache that do not grow: per layer the raw window (window × d F32) and each
    /// compressor's ring of pending [C | Z] rows (CSA: 2·ratio rows of 2·width, with the indexer's own).
    public var fixedSideBytes: Int {
        var total = 0
        for (l, ratio) in compressRatios.enumerated() {
            total += window * headDim * 4
            guard ratio > 0 else { continue }
            let overlapping = csaLayers[l], k = overlapping ? 2 : 1
            for width in overlapping ? [headDim, indexerHeadDim] : [headDim] { total += k * ratio * 2 * k * width * 4 }
        }
        return total
    }

    /// Floats of the hyper-connection mixes: pre (hc), post (hc), comb (hc × hc).
    var mixCount: Int { (2 + streams) * streams }
}

/// One hyper-connection: mix = fn · rmsnorm(flattened streams); base and scale shape it (HyperConnections in DeepSeek4Forward.swift).
public struct HyperConnectionWeights: @unchecked Sendable {
    public var fn: WeightMatrix
    public var base: FloatBuffer
    public var scale: FloatBuffer
}

/// A compressor: per token C = W_kv · x, Z = W_gate · x + position[p mod ratio] (width coff · d, coff = 2
/// for overlapping windows); each completed window pools its rows by a per-channel softmax over Z.
public struct CompressorWeights: @unchecked Sendable {
    public var kv: WeightMatrix
    public var gate: WeightMatrix
    /// [ratio, coff · d]
    public var position: FloatBuffer
    public var norm: FloatBuffer
    public var ratio: Int
    public var width: Int
    /// CSA: entry w pools the previous window's first halves and this window's second halves.
    public var overlapping: Bool
    var rowFloats: Int { (overlapping ? 2 : 1) * width }
}

public struct CompressedAttentionWeights: @unchecked Sendable {
    public var qA: WeightMatrix
    public var qANorm: FloatBuffer
    public var qB: WeightMatrix
    public var kv: WeightMatrix
    public var kvNorm: FloatBuffer
    public var sinks: FloatBuffer
    /// Per output group g: W_a[g] [rank, heads/groups · d]; W_b [e, groups · rank].
    public var outputA: [WeightMatrix]
    public var outputB: WeightMatrix
    public var compressor: CompressorWeights?
    /// CSA: the lightning indexer's compressor (keys), query projection and head weights.
    public var indexerCompressor: CompressorWeights?
    public var indexerQB: WeightMatrix?
    public var indexerProj: WeightMatrix?
}

public struct DeepSeek4LayerWeights: @unchecked Sendable {
    public var hcAttention: HyperConnectionWeights
    public var hcFFN: HyperConnectionWeights
    public var attnNorm: FloatBuffer
    public var attention: CompressedAttentionWeights
    public var ffnNorm: FloatBuffer
    public var moe: MoEWeights
}

public struct DeepSeek4Weights: @unchecked Sendable {
    public var layers: [DeepSeek4LayerWeights]
    /// Final collapse of the streams: fn [hc, hc · e], scale [1], base [hc].
    public var outputHc: HyperConnectionWeights
    /// RoPE tables' frequencies, built once: main (window-only layers) and compressed layers' (YaRN).
    var ropes: DeepSeek4Ropes
}

public enum DeepSeek4Architecture: Architecture {
    public static let name = "deepseek4"

    public static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack {
        let meta = ArchitectureMetadata(gguf, architecture: name)
        func value(_ key: String) -> GGUFValue? { meta[key] }
        let required = meta.required
        func floats(_ key: String, default d: Float) -> [Float] {
            if let a = value(key)?.array { return a.map { $0.float ?? d } }
            return Array(repeating: value(key)?.float ?? d, count: config.layerCount)
        }
        let layers = config.layerCount
        let ratios = value("attention.compress_ratios")?.array?.compactMap { $0.int } ?? Array(repeating: 0, count: layers)
        guard ratios.count >= layers, ratios.allSatisfy({ $0 == 0 || $0 > 1 }) else {
            throw ModelError.invalidConfig(file: gguf.path, message: "\(name).attention.compress_ratios must give every layer 0 or a ratio > 1")
        }
        var yarn: YarnConfig? = nil
        if let y = config.yarn { yarn = y; yarn?.logMultiplier = 0 }
        let ds = DeepSeek4Config(
            streams: try required("hyper_connection.count"),
            sinkhornIterations: value("hyper_connection.sinkhorn_iterations")?.int ?? 20,
            hcEpsilon: value("hyper_connection.epsilon")?.float ?? 1e-6,
            qLoraRank: try required("attention.q_lora_rank"),
            headDim: config.headDimK,
            ropeDim: config.ropeDimensions,
            window: value("attention.sliding_window")?.int ?? 128,
            compressRatios: Array(ratios.prefix(layers)),
            indexerHeads: value("attention.indexer.head_count")?.int ?? 0,
            indexerHeadDim: value("attention.indexer.key_length")?.int ?? 0,
            indexerTopK: value("attention.indexer.top_k")?.int ?? 0,
            outputGroups: try required("attention.output_group_count"),
            outputRank: try required("attention.output_lora_rank"),
            mainRopeBase: config.ropeBase,
            compressRopeBase: value("attention.compress_rope_freq_base")?.float ?? config.ropeBase,
            compressYarn: yarn,
            swigluLimits: floats("swiglu_clamp_exp", default: 0),
            sharedSwigluLimits: value("swiglu_clamp_shexp") != nil ? floats("swiglu_clamp_shexp", default: 0) : floats("swiglu_clamp_exp", default: 0),
            hashLayers: value("hash_layer_count")?.int ?? 0)
        guard ds.streams > 0, ds.ropeDim <= ds.headDim, ds.ropeDim % 2 == 0, ds.window > 0,
              config.headCount % ds.outputGroups == 0, ds.swigluLimits.count >= layers, ds.sharedSwigluLimits.count >= layers else {
            throw ModelError.invalidConfig(file: gguf.path, message: "deepseek4 shapes: \(ds.streams) streams, head \(ds.headDim), rope \(ds.ropeDim), \(ds.outputGroups) output groups")
        }
        if ratios.contains(where: { $0 > 0 && $0 < 128 }) {
            guard ds.indexerHeads > 0, ds.indexerHeadDim >= ds.ropeDim, ds.indexerTopK > 0 else {
                throw ModelError.missingMetadata(file: gguf.path, key: "\(name).attention.indexer.head_count / key_length / top_k")
            }
        }
        var withCSA = ds
        withCSA.csaLayers = (0..<layers).map { gguf.tensor(DeepSeek4TensorName.indexerCompressorKV($0).name) != nil }
        var moe = try MoEConfig.read(gguf, name, defaultGating: .sqrtSoftplus)
        _ = try moe.locate(in: gguf, layers: layers)
        return DeepSeek4Stack(config: config, deepseek: withCSA, moe: moe,
                              weights: try WeightReader(gguf, layout: config.weightLayout).deepSeek4(config, withCSA, moe: moe))
    }
}

/// DeepSeek V4's layers (DeepSeek4Forward.swift runs them): hyper-connection streams, compressed
/// attention with its cache beside the pages, MoE.
final class DeepSeek4Stack: LayerStack, @unchecked Sendable {
    let config: ModelConfig
    let deepseek: DeepSeek4Config
    let moe: MoEConfig
    let weights: DeepSeek4Weights

    init(config: ModelConfig, deepseek: DeepSeek4Config, moe: MoEConfig, weights: DeepSeek4Weights) {
        self.config = config; self.deepseek = deepseek; self.moe = moe; self.weights = weights
    }

    var activations: ActivationShape { ActivationShape(config) }

    func makeScratch(maxBatch: Int, threads: Int) -> AnyObject? {
        DeepSeek4Scratch(config: config, deepseek, moe: moe, maxBatch: maxBatch, threads: threads)
    }

    /// The compressed cache lives beside the pages (KVSequence.auxiliary, its entries F32 or half for
    /// narrower KV types); the pages only carry the sequence's tokens and positions.
    func kvShape(type: KVType) -> KVShape {
        let side = deepseek.compressedBytesPerPosition(elementBytes: type == .f32 ? 4 : 2).rounded(.up)
        return KVShape(layers: 1, kRowFloats: type.blockSize, vRowFloats: 0, type: type, retention: [.all],
                       sideBytesPerPosition: Int(side), sideFixedBytes: deepseek.fixedSideBytes)
    }

    /// Any KV type: the pages hold no head rows.
    func kvTypeProblem(_ type: KVType) -> String? { nil }

    func kvFootprint(type: KVType) -> KVFootprint {
        KVFootprint(bytesPerToken: deepseek.compressedBytesPerPosition(elementBytes: type == .f32 ? 4 : 2), fixedBytes: deepseek.fixedSideBytes)
    }

    var keepsSideState: Bool { true }
    /// Decode rows: products (grouped ones too) by the multi-row kernel, experts per token, the
    /// compressors and attention row by row.
    var exactDecodeRows: Bool { true }
    func makeSideState(kvType: KVType) -> KVSideState? { DeepSeek4Cache(config: deepseek, weights: weights, halfEntries: kvType != .f32) }

    /// Raw windows, compressor rings and the compressed entries of `contextLength` positions.
    func sideStateBytes(contextLength: Int, type: KVType) -> Int {
        let f = kvFootprint(type: type)
        return f.fixedBytes + Int(f.bytesPerToken * Double(contextLength))
    }

    var moeBlocks: [(layer: Int, weights: MoEWeights)] { weights.layers.enumerated().map { ($0.offset, $0.element.moe) } }

    var weightBytesPerToken: Int { layerWeightBytes.reduce(0, +) }

    /// Pipeline stages run layer ranges; the hidden rows between them are the hc streams.
    var runsLayerRanges: Bool { true }
    var pipelineWidth: Int? { deepseek.streams * config.embeddingLength }
    func pipelineRows(_ state: InferenceState) -> UnsafeMutablePointer<Float> { state.scratch(DeepSeek4Scratch.self).streams.pointer }

    var layerWeightBytes: [Int] {
        func bytes(_ m: WeightMatrix) -> Int { m.rows * m.rowBytes }
        return weights.layers.map { l in
            var total = 0
            let a = l.attention
            for m in [a.qA, a.qB, a.kv, a.outputB, l.hcAttention.fn, l.hcFFN.fn] + a.outputA { total += bytes(m) }
            for m in [a.compressor?.kv, a.compressor?.gate, a.indexerCompressor?.kv, a.indexerCompressor?.gate, a.indexerQB, a.indexerProj] {
                if let m { total += bytes(m) }
            }
            return total + l.moe.bytesPerToken()
        }
    }
}

extension WeightReader {
    func hyperConnection(fn: String, base: String, scale: String, mixes: Int, streams: Int, _ c: ModelConfig) throws -> HyperConnectionWeights {
        HyperConnectionWeights(fn: try matrix(named: fn, rows: mixes, cols: streams * c.embeddingLength),
                               base: try vector(named: base, count: mixes),
                               scale: try vector(named: scale, count: mixes == streams ? 1 : 3))
    }

    func compressor(kv: String, gate: String, position: String, norm: String, ratio: Int, width: Int, overlapping: Bool,
                    _ c: ModelConfig) throws -> CompressorWeights {
        let rowFloats = (overlapping ? 2 : 1) * width
        let ape = try matrix(named: position, rows: ratio, cols: rowFloats)
        let table = FloatBuffer(count: ratio * rowFloats)
        for r in 0..<ratio { ape.dequantizeRow(r, into: table.pointer + r * rowFloats) }
        return CompressorWeights(kv: try matrix(named: kv, rows: rowFloats, cols: c.embeddingLength),
                                 gate: try matrix(named: gate, rows: rowFloats, cols: c.embeddingLength),
                                 position: table, norm: try vector(named: norm, count: width),
                                 ratio: ratio, width: width, overlapping: overlapping)
    }

    func deepSeek4(_ c: ModelConfig, _ ds: DeepSeek4Config, moe m: MoEConfig) throws -> DeepSeek4Weights {
        let e = c.embeddingLength, h = c.headCount, d = ds.headDim
        typealias N = DeepSeek4TensorName
        var layers: [DeepSeek4LayerWeights] = []
        for l in 0..<c.layerCount {
            let ratio = ds.compressRatios[l]
            let groupWidth = h / ds.outputGroups * d
            let outA = try matrix(named: N.outputA(l).name, rows: ds.outputGroups * ds.outputRank, cols: groupWidth)
            var attention = CompressedAttentionWeights(
                qA: try matrix(named: MoETensorName.qA(l).name, rows: ds.qLoraRank, cols: e),
                qANorm: try vector(named: MoETensorName.qANorm(l).name, count: ds.qLoraRank),
                qB: try matrix(named: MoETensorName.qB(l).name, rows: h * d, cols: ds.qLoraRank),
                kv: try matrix(named: N.kv(l).name, rows: d, cols: e),
                kvNorm: try vector(named: MoETensorName.kvANorm(l).name, count: d),
                sinks: try vector(named: N.sinks(l).name, count: h),
                outputA: (0..<ds.outputGroups).map { g in
                    WeightMatrix(type: outA.type, rows: ds.outputRank, cols: groupWidth, data: outA.data + g * ds.outputRank * outA.rowBytes,
                                 name: "\(outA.name)[\(g)]")
                },
                outputB: try matrix(named: N.outputB(l).name, rows: e, cols: ds.outputGroups * ds.outputRank),
                compressor: nil, indexerCompressor: nil, indexerQB: nil, indexerProj: nil)
            if ratio > 0 {
                let overlapping = ds.csaLayers[l]   // CSA: overlapping windows + indexer
                attention.compressor = try compressor(kv: N.compressorKV(l).name, gate: N.compressorGate(l).name,
                                                      position: N.compressorPosition(l).name, norm: N.compressorNorm(l).name,
                                                      ratio: ratio, width: d, overlapping: overlapping, c)
                if overlapping {
                    attention.indexerCompressor = try compressor(
                        kv: N.indexerCompressorKV(l).name, gate: N.indexerCompressorGate(l).name,
                        position: N.indexerCompressorPosition(l).name, norm: N.indexerCompressorNorm(l).name,
                        ratio: ratio, width: ds.indexerHeadDim, overlapping: true, c)
                    attention.indexerQB = try matrix(named: MoETensorName.indexerQB(l).name, rows: ds.indexerHeads * ds.indexerHeadDim,
                                                     cols: ds.qLoraRank)
                    attention.indexerProj = try matrix(named: MoETensorName.indexerProj(l).name, rows: ds.indexerHeads, cols: e)
                }
            }
            var moe = try self.moe(l, c, m)
            moe.swigluLimit = ds.swigluLimits[l]
            moe.sharedSwigluLimit = ds.sharedSwigluLimits[l]
            if l < ds.hashLayers {
                let name = N.hashExperts(l).name
                let used = m.expertsUsed
                guard let info = gguf.tensor(name), info.type == .i32, info.dims.count == 2, info.dims[0] == used, info.dims[1] >= c.vocabularySize else {
                    throw ModelError.missingTensor(file: gguf.path, name: "\(name) (I32 [\(used), vocabulary])")
                }
                let table = UnsafeBufferPointer(start: gguf.data(of: info).assumingMemoryBound(to: Int32.self), count: info.elementCount)
                guard table.allSatisfy({ $0 >= 0 && Int($0) < m.expertCount }) else {
                    throw ModelError.invalidConfig(file: gguf.path, message: "\(name) names an expert outside 0..<\(m.expertCount)")
                }
                moe.hashExperts = Int32Buffer(table)
            }
            layers.append(DeepSeek4LayerWeights(
                hcAttention: try hyperConnection(fn: N.hcAttnFn(l).name, base: N.hcAttnBase(l).name, scale: N.hcAttnScale(l).name,
                                                 mixes: ds.mixCount, streams: ds.streams, c),
                hcFFN: try hyperConnection(fn: N.hcFFNFn(l).name, base: N.hcFFNBase(l).name, scale: N.hcFFNScale(l).name,
                                           mixes: ds.mixCount, streams: ds.streams, c),
                attnNorm: try vector(.attnNorm(l), count: e), attention: attention,
                ffnNorm: try vector(.ffnNorm(l), count: e), moe: moe))
        }
        return DeepSeek4Weights(layers: layers, outputHc: try hyperConnection(
            fn: N.outputHcFn.name, base: N.outputHcBase.name, scale: N.outputHcScale.name, mixes: ds.streams, streams: ds.streams, c),
            ropes: DeepSeek4Ropes(ds))
    }
}
