// Adaptive quantization end to end: measure the sensitivity of each tensor group of a float reference
// over calibration text (or reuse a saved table), turn the user's size target into a byte budget for
// the quantized groups, allocate, and hand the writer one type per tensor.

import Engine
import Foundation
import GGUF

public enum SizeTarget: Sendable {
    /// The whole output file at most this many bytes.
    case fileBytes(Int)
    /// Tensor data at most this many bits per weight over every tensor.
    case bitsPerWeight(Double)
    /// The quantized groups' data at most this many bytes.
    case groupBytes(Int)
    /// Every tensor's data at most this many bytes (--fit's weight budget).
    case weightBytes(Int)

    /// Bytes left for the quantized groups.
    func groupBudget(_ file: GGUFFile, _ table: SensitivityTable) -> Int {
        switch self {
        case .fileBytes(let n): return n - Allocator.fixedBytes(file, table)
        case .groupBytes(let n): return n
        case .weightBytes(let n):
            let grouped = Set(table.groups.flatMap(\.tensors))
            return n - file.tensors.filter { !grouped.contains($0.name) }.reduce(0) { $0 + $1.byteCount }
        case .bitsPerWeight(let b):
            let grouped = Set(table.groups.flatMap(\.tensors))
            let elements = file.tensors.reduce(0) { $0 + $1.elementCount }
            let kept = file.tensors.filter { !grouped.contains($0.name) }.reduce(0) { $0 + $1.byteCount }
            return Int(b * Double(elements) / 8) - kept
        }
    }
}

public struct AdaptivePlan: Sendable {
    public var table: SensitivityTable
    public var allocation: Allocation
    public var choices: [TensorChoice]
    /// Per tensor, its share of its group's measured ΔKLD.
    public var estimates: [String: Double]
    public var budget: Int
}

public enum AdaptiveQuantization {
    /// Calibration chunks of `size` tokens from `text` (at most `count`), as perplexity cuts them.
    public static func calibrationChunks(_ session: Session, text: String, size: Int, count: Int) throws -> [[Int32]] {
        let (tokens, start) = Perplexity.tokenize(session, text)
        let n = min(count, tokens.count / size)
        guard n >= 1 else { throw QuantizeError.badArgument("the calibration text is shorter than one chunk of \(size) tokens") }
        return (0..<n).map { Perplexity.chunk(tokens, $0, size: size, chunkStart: start) }
    }

    /// The sensitivity table: read from `cache` when it exists (its own groups, which must name this
    /// model's quantizable tensors), else measured (and saved to `cache` when given).
    public static func table(_ loaded: LoadedModel, session: Session, chunks: [[Int32]], options: SensitivityOptions, cache: String?,
                             progress: (Int, Int, String) -> Void) throws -> SensitivityTable {
        if let cache, FileManager.default.fileExists(atPath: cache) {
            let t: SensitivityTable
            do { t = try SensitivityTable.load(cache) } catch { throw QuantizeError.badArgument("\(cache): not a sensitivity table (\(error))") }
            let quantizable = Set(loaded.gguf.tensors.filter { MixRules.isQuantizable($0) }.map(\.name))
            let named = t.groups.flatMap(\.tensors)
            guard t.entries.count == t.groups.count, Set(named) == quantizable, named.count == quantizable.count,
                  t.entries.allSatisfy({ !$0.isEmpty && $0.allSatisfy { GGMLType.named($0.type) != nil && $0.bytes > 0 } }) else {
                throw QuantizeError.badArgument("\(cache) was measured for another model (its groups do not cover this model's tensors); remove it or pass another --sensitivity file")
            }
            return t
        }
        let t = try Sensitivity.measure(loaded, session: session, chunks: chunks, options: options, progress: progress)
        if let cache { try t.save(to: cache) }
        return t
    }

    /// The allocation under `target`; types in `excluded` are not chosen (the table keeps them).
    public static func plan(_ file: GGUFFile, table measured: SensitivityTable, target: SizeTarget, excluded: Set<GGMLType> = []) throws -> AdaptivePlan {
        var table = measured
        table.entries = try zip(table.groups, table.entries).map { g, row in
            let kept = row.filter { GGMLType.named($0.type).map { !excluded.contains($0) } ?? false }
            guard !kept.isEmpty else { throw QuantizeError.badArgument("\(g.name): every type it can take is excluded") }
            return kept
        }
        let budget = target.groupBudget(file, table)
        let allocation = try Allocator.allocate(table, budget: budget)
        return AdaptivePlan(table: table, allocation: allocation, choices: Allocator.choices(file, table, allocation),
                            estimates: Allocator.estimates(table, allocation, file), budget: budget)
    }

    /// general.file_type for a mixed file: the mix whose base type holds the most weights.
    public static func fileType(_ choices: [TensorChoice]) -> FileType? {
        var elements: [GGMLType: Int] = [:]
        for c in choices where c.reason == .allocation { elements[c.type, default: 0] += c.tensor.elementCount }
        guard let dominant = elements.max(by: { $0.value < $1.value })?.key else { return nil }
        return FileType.all.first { $0.base == dominant }
    }
}
