// Collects an importance matrix while a model evaluates calibration text, as llama-imatrix does:
// for every weight W of a layer ("blk.…", and output.weight if asked), Σ x² per input column over the
// rows X that W multiplies and the number of rows; a stacked expert tensor keeps one sum and count
// per expert. Dense products of fewer than 16 rows are skipped (llama-imatrix's rule, so that decode
// steps do not count); expert products always count.

import Engine
import Foundation
import GGUF
import Kernels

public final class ImportanceCollector: ProductObserver {
    struct Accumulator {
        var sums: UnsafeMutablePointer<Float>
        var counts: [Float]
        let cols: Int
    }

    let processOutput: Bool
    private var accumulators: [String: Accumulator] = [:]
    /// Experts of each stacked tensor of the model (dims[2]).
    private let experts: [String: Int]

    public init(model file: GGUFFile, processOutput: Bool = false) {
        self.processOutput = processOutput
        var e: [String: Int] = [:]
        for t in file.tensors where t.dims.count == 3 { e[t.name] = t.dims[2] }
        experts = e
    }

    deinit { for a in accumulators.values { a.sums.deallocate() } }

    public func observe(_ weights: WeightMatrix, rows x: UnsafePointer<Float>, count: Int, cols: Int) {
        // "name[e]" is expert e of a stacked tensor.
        var name = weights.name, expert = 0, isExpert = false
        if name.hasSuffix("]"), let open = name.lastIndex(of: "["), let e = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]) {
            expert = e
            isExpert = true
            name = String(name[..<open])
        }
        guard name.hasPrefix("blk.") || (processOutput && name == "output.weight") else { return }
        guard isExpert || count >= 16, count > 0 else { return }
        let matrices = isExpert ? (experts[name] ?? expert + 1) : 1
        guard expert < matrices else { return }
        if accumulators[name] == nil {
            let sums = UnsafeMutablePointer<Float>.allocate(capacity: matrices * cols)
            sums.initialize(repeating: 0, count: matrices * cols)
            accumulators[name] = Accumulator(sums: sums, counts: [Float](repeating: 0, count: matrices), cols: cols)
        }
        guard accumulators[name]!.cols == cols else { return }
        let acc = accumulators[name]!.sums + expert * cols
        for r in 0..<count {
            let row = x + r * cols
            for c in 0..<cols { acc[c] += row[c] * row[c] }
        }
        accumulators[name]!.counts[expert] += Float(count)
    }

    /// What was collected, as an importance matrix of `chunks` chunks of `chunkSize` tokens.
    public func matrix(datasets: [String], chunks: Int, chunkSize: Int) -> ImportanceMatrix {
        var m = ImportanceMatrix()
        m.datasets = datasets
        m.chunkCount = chunks
        m.chunkSize = chunkSize
        for (name, a) in accumulators {
            m.entries[name] = .init(sums: Array(UnsafeBufferPointer(start: a.sums, count: a.counts.count * a.cols)), counts: a.counts)
        }
        return m
    }
}

public enum ImportanceRun {
    /// Evaluates `text` in chunks of `contextSize` tokens like perplexity (each from an empty cache)
    /// with a collector attached; returns the matrix and the text's perplexity.
    public static func collect(session: Session, file: GGUFFile, text: String, dataset: String, contextSize: Int, maxChunks: Int?,
                               processOutput: Bool, onChunk: (Int, Double) -> Void = { _, _ in }) throws -> (ImportanceMatrix, PerplexityResult) {
        guard let cpu = session.state.ops as? CPUBackend else { throw QuantizeError.unsupported("imatrix needs the CPU backend") }
        let collector = ImportanceCollector(model: file, processOutput: processOutput)
        cpu.observer = collector
        defer { cpu.observer = nil }
        let result = try Perplexity.run(session: session, text: text, contextSize: contextSize, maxChunks: maxChunks, onChunk: onChunk)
        return (collector.matrix(datasets: [dataset], chunks: result.chunks.count, chunkSize: contextSize), result)
    }
}
