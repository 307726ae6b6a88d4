// Perplexity with llama-perplexity's definition: the text is tokenized once (BOS per the model's
// flag), cut into chunks of n_ctx tokens (the first token of each chunk replaced by BOS when the model
// adds BOS), every chunk evaluated from an empty cache, and only the second half of each chunk scored:
// NLL over positions j ∈ [n_ctx/2, n_ctx-1) predicting token j+1.

import Foundation
import Kernels
import Models

public struct PerplexityResult: Sendable {
    public var chunks: [Double] = []          // running PPL after each chunk
    public var perplexity: Double = .nan
    public var uncertainty: Double = .nan    // ± like llama.cpp (std error of the mean NLL × PPL)
    public var tokensScored = 0
    public var seconds = 0.0
}

public enum Perplexity {
    /// The text's tokens as llama-perplexity makes them (BOS per the model's flag) and the token that
    /// starts every chunk (BOS when the model adds one, else nil).
    public static func tokenize(_ session: Session, _ text: String) -> (tokens: [Int32], chunkStart: Int32?) {
        let tok = session.tokenizer
        let addsBos = tok.encode("", addSpecial: true, parseSpecial: false).first == tok.bosId && tok.bosId != nil
        return (tok.encode(text, addSpecial: true, parseSpecial: false), addsBos ? tok.bosId : nil)
    }

    /// Chunk c of `size` tokens, its first token replaced by `chunkStart`.
    public static func chunk(_ tokens: [Int32], _ c: Int, size: Int, chunkStart: Int32?) -> [Int32] {
        var chunk = Array(tokens[(c * size)..<((c + 1) * size)])
        if let b = chunkStart { chunk[0] = b }
        return chunk
    }

    /// Evaluates a chunk from an empty cache: the logits of its scored positions, rows first ..< size − 1
    /// with first = size / 2 (each row predicts the token after it).
    public static func scoredLogits(_ session: Session, _ chunk: [Int32]) throws -> UnsafeBufferPointer<Float> {
        session.reset()
        return try session.model.forward(chunk, startPosition: 0, state: session.state, logits: .suffix(chunk.count - chunk.count / 2))
    }

    public static func run(session: Session, text: String, contextSize: Int, maxChunks: Int?,
                           onChunk: (Int, Double) -> Void = { _, _ in }) throws -> PerplexityResult {
        let (tokens, chunkStart) = tokenize(session, text)
        let nCtx = contextSize
        guard nCtx >= 8, nCtx <= session.contextLength else {
            throw InferenceError.contextOverflow(needed: nCtx, capacity: session.contextLength)
        }
        var nChunks = tokens.count / nCtx
        if let m = maxChunks, m >= 0 { nChunks = min(nChunks, m) }
        let first = nCtx / 2
        let vocab = session.model.vocabularySize
        var nll = 0.0, nll2 = 0.0, count = 0
        var result = PerplexityResult()
        let t0 = Date()
        for c in 0..<nChunks {
            let chunk = self.chunk(tokens, c, size: nCtx, chunkStart: chunkStart)
            let logits = try scoredLogits(session, chunk)
            for j in first..<(nCtx - 1) {
                let logProb = Kernels.logSoftmax(logits.baseAddress! + (j - first) * vocab, count: vocab, at: Int(chunk[j + 1]))
                nll -= logProb
                nll2 += logProb * logProb
                count += 1
            }
            let ppl = exp(nll / Double(count))
            result.chunks.append(ppl)
            onChunk(c + 1, ppl)
        }
        session.reset()
        result.tokensScored = count
        result.seconds = Date().timeIntervalSince(t0)
        guard count > 0 else { return result }
        let mean = nll / Double(count)
        result.perplexity = exp(mean)
        var variance = nll2 / Double(count) - mean * mean
        if variance > 0, count > 1 {
            variance = (variance / Double(count - 1)).squareRoot()
            result.uncertainty = variance * result.perplexity
        }
        return result
    }
}
