// Measured sensitivity: how much the model's output distribution moves (mean KL divergence against the
// unquantized model over calibration chunks) when one group of tensors alone is quantized to each
// candidate type. The reference is a float file (F32/F16/BF16) mapped copy-on-write: a group's
// tensors are overwritten in memory with their quantized-then-dequantized values, the model evaluated,
// and the original bytes put back; everything else stays at full precision.

import Engine
import Foundation
import GGUF
import Kernels

/// A set of tensors that always gets one type (a tensor, or one role over a few layers).
public struct TensorGroup: Codable, Sendable, Hashable {
    public var name: String
    public var tensors: [String]
    public init(name: String, tensors: [String]) { self.name = name; self.tensors = tensors }
}

public struct SensitivityTable: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        public var type: String
        public var bytes: Int
        /// Mean KLD against the reference with only this group quantized to `type` (the reference's own
        /// measurement noise subtracted).
        public var kld: Double
        public init(type: String, bytes: Int, kld: Double) { self.type = type; self.bytes = bytes; self.kld = kld }
    }
    public var model: String
    public var calibrationTokens: Int
    public var imatrix: String?
    public var groups: [TensorGroup]
    /// Per group, its candidates.
    public var entries: [[Entry]]

    public init(model: String, calibrationTokens: Int, imatrix: String?, groups: [TensorGroup], entries: [[Entry]]) {
        self.model = model; self.calibrationTokens = calibrationTokens; self.imatrix = imatrix; self.groups = groups; self.entries = entries
    }

    public func save(to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(self).write(to: URL(fileURLWithPath: path))
    }

    public static func load(_ path: String) throws -> SensitivityTable {
        try JSONDecoder().decode(SensitivityTable.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

public struct SensitivityOptions: Sendable {
    /// Candidate types (each group tries those its rows allow and that have a quantizer; IQ1_S,
    /// IQ2_XXS and IQ2_XS only with an importance matrix). The codebook i-quants reach below Q2_K's
    /// 2.625 bits per weight (IQ1_S 1.5625, IQ1_M 1.75, IQ2_XXS 2.0625): what routed experts of the
    /// largest models take.
    public static let defaultCandidates: [GGMLType] = [.q2_K, .q3_K, .iq4_xs, .q4_K, .q5_K, .q6_K, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .iq4_nl,
                                                       .iq1_s, .iq1_m, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s]
    public var candidates: [GGMLType] = defaultCandidates
    /// Layers per group of a role (1: every tensor on its own).
    public var layersPerGroup = 1
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    public var importance: ImportanceMatrix?
    public init() {}
}

public enum Sensitivity {
    /// The quantizable tensors of `file` in groups: each non-layer tensor alone, layer tensors by role
    /// over `layersPerGroup` consecutive layers.
    public static func groups(_ file: GGUFFile, layersPerGroup: Int) -> [TensorGroup] {
        var groups: [String: TensorGroup] = [:]
        var order: [String] = []
        for t in MixRules.ordered(file.tensors) where MixRules.isQuantizable(t) {
            let layer = MixRules.layer(t.name)
            let key: String
            if layer < 0 { key = t.name } else {
                let first = layer / layersPerGroup * layersPerGroup
                let role = QuantizeSummary.group(of: t.name)
                key = layersPerGroup == 1 ? t.name : "blk.\(first)-\(first + layersPerGroup - 1).\(role)"
            }
            if groups[key] == nil { groups[key] = TensorGroup(name: key, tensors: []); order.append(key) }
            groups[key]!.tensors.append(t.name)
        }
        return order.map { groups[$0]! }
    }

    /// The types a tensor can take: a quantizer, rows its blocks divide, and an importance vector for
    /// the types whose quantizer needs one (IQ2_XXS, IQ2_XS, IQ1_S).
    static func legal(_ t: GGUFTensorInfo, _ candidates: [GGMLType], importance: ImportanceMatrix? = nil) -> [GGMLType] {
        let vector = (try? ModelQuantizer.importanceVector(t, importance)) ?? nil
        return candidates.filter {
            Kernels.canQuantize($0) && t.rowLength % $0.blockSize == 0 && (vector != nil || !Kernels.needsImportance($0))
        }
    }

    /// Measures every group under every legal candidate. `loaded` must be a float model loaded with
    /// writableWeights; `chunks` the calibration token chunks.
    public static func measure(_ loaded: LoadedModel, session: Session, chunks: [[Int32]], options: SensitivityOptions,
                               progress: (Int, Int, String) -> Void = { _, _, _ in }) throws -> SensitivityTable {
        let file = loaded.gguf
        guard file.isWritable else { throw QuantizeError.unsupported("the sensitivity run needs the reference mapped writable") }
        let groups = groups(file, layersPerGroup: max(1, options.layersPerGroup))
        for g in groups {
            for name in g.tensors where ![GGMLType.f32, .f16, .bf16].contains(file.tensor(name)!.type) {
                throw QuantizeError.badArgument("\(name) is \(file.tensor(name)!.type.name): measure sensitivity on a float reference (`dwarfstar convert` it to f16 first)")
            }
        }
        let references = try chunks.map { try ReferenceChunk(reference: session, tokens: $0) }
        func meanKLD() throws -> Double {
            var s = KLDStatistics()
            for r in references { try s.add(r, session: session) }
            return s.meanKLD
        }
        let noise = try meanKLD()
        var qOptions = QuantizeOptions()
        qOptions.threads = options.threads
        qOptions.importance = options.importance
        qOptions.allowRequantize = true
        var entries: [[SensitivityTable.Entry]] = []
        let total = groups.reduce(0) { n, g in n + legalForGroup(g, file, options.candidates, importance: options.importance).count }
        var done = 0
        for g in groups {
            let tensors = g.tensors.map { file.tensor($0)! }
            var row: [SensitivityTable.Entry] = []
            for type in legalForGroup(g, file, options.candidates, importance: options.importance) {
                let saved = tensors.map { Array(UnsafeRawBufferPointer(start: file.data(of: $0), count: $0.byteCount)) }
                for t in tensors { fakeQuantize(file, t, to: type, qOptions) }
                let kld = try meanKLD() - noise
                for (t, bytes) in zip(tensors, saved) {
                    bytes.withUnsafeBytes { file.mutableData(of: t).copyMemory(from: $0.baseAddress!, byteCount: t.byteCount) }
                }
                let bytes = tensors.reduce(0) { $0 + (type.byteCount(elements: $1.elementCount) ?? 0) }
                row.append(.init(type: type.name, bytes: bytes, kld: kld))
                done += 1
                progress(done, total, "\(g.name) \(type.name) ΔKLD \(String(format: "%.5f", kld))")
            }
            entries.append(row)
        }
        return SensitivityTable(model: file.path, calibrationTokens: chunks.reduce(0) { $0 + $1.count }, imatrix: nil, groups: groups, entries: entries)
    }

    static func legalForGroup(_ g: TensorGroup, _ file: GGUFFile, _ candidates: [GGMLType], importance: ImportanceMatrix? = nil) -> [GGMLType] {
        var types = candidates
        for name in g.tensors {
            let legal = Set(legal(file.tensor(name)!, candidates, importance: importance))
            types = types.filter { legal.contains($0) }
        }
        return types
    }

    /// Overwrites tensor t (a float type) in memory with its values quantized to `type` and back.
    static func fakeQuantize(_ file: GGUFFile, _ t: GGUFTensorInfo, to type: GGMLType, _ options: QuantizeOptions) {
        let q = ModelQuantizer.tensorBytes(file, TensorChoice(tensor: t, type: type, reason: .allocation), options)
        let cols = t.rowLength, rows = t.rowCount, qRow = type.byteCount(elements: cols)!
        let dst = file.mutableData(of: t)
        let parts = max(1, min(options.threads, rows))
        q.withUnsafeBytes { src in
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let lo = rows * p / parts, hi = rows * (p + 1) / parts
                let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
                defer { row.deallocate() }
                for r in lo..<hi {
                    Kernels.dequantize(type, src.baseAddress! + r * qRow, into: row, count: cols)
                    Kernels.quantize(t.type, row, rows: 1, cols: cols, importance: nil, into: dst + r * t.rowBytes)
                }
            }
        }
    }
}
