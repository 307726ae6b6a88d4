// The reference side of a KL-divergence measurement: per chunk of text, the reference model's
// compressed log-probabilities at the scored positions, in memory (the sensitivity runs) or in
// llama-perplexity's --kl-divergence-base file ("_logits_", n_ctx u32, n_vocab i32, n_chunk i32, the
// n_chunk·n_ctx tokens as i32, then per chunk (n_ctx − 1 − n_ctx/2) rows of nv uint16), streamed chunk
// by chunk: a large vocabulary makes the file gigabytes long.

import Engine
import Foundation

public struct ReferenceChunk: Sendable {
    /// The chunk's tokens as evaluated (the first replaced by BOS where the model adds one).
    public var tokens: [Int32]
    /// (count − 1 − count/2) rows of ReferenceLogProbs.rowLength(vocab) values.
    public var rows: [UInt16]

    /// The reference session's compressed log-probabilities over `tokens`.
    public init(reference: Session, tokens: [Int32]) throws {
        self.tokens = tokens
        let vocab = reference.model.vocabularySize, nv = ReferenceLogProbs.rowLength(vocab: vocab)
        let n = tokens.count, first = n / 2
        let logits = try Perplexity.scoredLogits(reference, tokens)
        rows = [UInt16](repeating: 0, count: (n - 1 - first) * nv)
        rows.withUnsafeMutableBufferPointer { out in
            for j in first..<(n - 1) {
                ReferenceLogProbs.compress(logits.baseAddress! + (j - first) * vocab, vocab: vocab, token: Int(tokens[j + 1]),
                                           into: out.baseAddress! + (j - first) * nv)
            }
        }
    }

    init(tokens: [Int32], rows: [UInt16]) { self.tokens = tokens; self.rows = rows }
}

extension KLDStatistics {
    /// Evaluates `session` on the chunk and adds its scored positions against the reference rows.
    public mutating func add(_ chunk: ReferenceChunk, session: Session) throws {
        let vocab = session.model.vocabularySize, nv = ReferenceLogProbs.rowLength(vocab: vocab)
        let n = chunk.tokens.count, first = n / 2
        guard chunk.rows.count == (n - 1 - first) * nv else {
            throw QuantizeError.badArgument("the reference rows (\(chunk.rows.count) values) do not fit a vocabulary of \(vocab)")
        }
        let logits = try Perplexity.scoredLogits(session, chunk.tokens)
        chunk.rows.withUnsafeBufferPointer { ref in
            for j in first..<(n - 1) {
                add(logits.baseAddress! + (j - first) * vocab, vocab: vocab, reference: ref.baseAddress! + (j - first) * nv, token: Int(chunk.tokens[j + 1]))
            }
        }
    }
}

/// llama-perplexity's --kl-divergence-base file.
public enum LogitsBaseFile {
    static let magic = Array("_logits_".utf8)

    public final class Writer {
        let handle: FileHandle
        let path: String
        let rowValues: Int

        /// Starts the file: header and all tokens (chunks × contextSize, as tokenized, not BOS-replaced).
        public init(path: String, contextSize: Int, vocab: Int, chunks: Int, tokens: ArraySlice<Int32>) throws {
            guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
                throw QuantizeError.badArgument("cannot create \(path)")
            }
            handle = h
            self.path = path
            rowValues = (contextSize - 1 - contextSize / 2) * ReferenceLogProbs.rowLength(vocab: vocab)
            var header = Data(LogitsBaseFile.magic)
            for v in [UInt32(contextSize), UInt32(bitPattern: Int32(vocab)), UInt32(bitPattern: Int32(chunks))] {
                withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) }
            }
            tokens.withUnsafeBytes { header.append(contentsOf: $0) }
            try handle.write(contentsOf: header)
        }

        public func append(_ chunk: ReferenceChunk) throws {
            precondition(chunk.rows.count == rowValues)
            try chunk.rows.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
        }

        public func close() throws { try handle.close() }
    }

    public final class Reader {
        public let contextSize: Int
        public let vocab: Int
        public let chunks: Int
        /// All chunks' tokens, as written.
        public let tokens: [Int32]
        let handle: FileHandle
        let dataStart: UInt64
        let rowValues: Int

        public init(path: String) throws {
            guard let h = FileHandle(forReadingAtPath: path) else { throw QuantizeError.badArgument("cannot open \(path)") }
            handle = h
            func bad(_ m: String) -> QuantizeError { .badArgument("\(path): not a logits base file (\(m))") }
            let header = try h.read(upToCount: 20) ?? Data()
            guard header.count == 20, Array(header.prefix(8)) == LogitsBaseFile.magic else { throw bad("no _logits_ header") }
            let ints = header.withUnsafeBytes { raw in (0..<3).map { raw.loadUnaligned(fromByteOffset: 8 + 4 * $0, as: Int32.self) } }
            contextSize = Int(UInt32(bitPattern: ints[0])); vocab = Int(ints[1]); chunks = Int(ints[2])
            guard contextSize >= 8, contextSize <= 1 << 20, vocab >= 2, vocab <= 1 << 24, chunks >= 1, chunks <= 1 << 20 else {
                throw bad("n_ctx \(contextSize), n_vocab \(vocab), n_chunk \(chunks)")
            }
            rowValues = (contextSize - 1 - contextSize / 2) * ReferenceLogProbs.rowLength(vocab: vocab)
            let tokenBytes = contextSize * chunks * 4
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            guard size >= 20 + tokenBytes + chunks * rowValues * 2 else {
                throw bad("\(size) bytes, \(chunks) chunks of \(contextSize) tokens over \(vocab) need \(20 + tokenBytes + chunks * rowValues * 2)")
            }
            let t = try h.read(upToCount: tokenBytes) ?? Data()
            tokens = t.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
            let vocabulary = vocab
            guard tokens.allSatisfy({ $0 >= 0 && Int($0) < vocabulary }) else { throw bad("a token id outside the vocabulary") }
            dataStart = UInt64(20 + tokenBytes)
        }

        /// Chunk c with its first token replaced by `chunkStart` (BOS where the model adds one).
        public func chunk(_ c: Int, chunkStart: Int32?) throws -> ReferenceChunk {
            try handle.seek(toOffset: dataStart + UInt64(c * rowValues * 2))
            let d = try handle.read(upToCount: rowValues * 2) ?? Data()
            guard d.count == rowValues * 2 else { throw QuantizeError.badArgument("logits base file truncated in chunk \(c)") }
            var t = Array(tokens[(c * contextSize)..<((c + 1) * contextSize)])
            if let b = chunkStart { t[0] = b }
            return ReferenceChunk(tokens: t, rows: d.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) })
        }
    }
}
