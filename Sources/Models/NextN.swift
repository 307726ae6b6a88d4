// MTP / next-n layers (GLM-4.5 and GLM-4.6 `nextn`, DeepSeek V3's MTP module), stored after the trunk
// as block N = the trunk's layer count. For the token at position p and the trunk's final hidden state
// h at position p − 1 (before the output norm), the layer predicts the token at p + 1:
//   x   = W_eh · [rmsnorm(embed(token)) · enorm ; rmsnorm(h) · hnorm]      W_eh[E, 2E]
//   g   = decoder block N (attention over the layer's own KV of earlier positions, then its FFN)
//   out = W_head · rmsnorm(g) · shared_head_norm    (shared_head_head, else the model's output)
// g stands in for h when the layer is chained to draft further tokens. Same layout as llama.cpp's
// graph_mtp for glm4moe (nextn.eh_proj/enorm/hnorm/shared_head_norm/shared_head_head/embed_tokens).

import GGUF
import Kernels

public final class NextNHead: @unchecked Sendable {
    /// The layer and its head as a one-layer model: forward(tokens, inputRows: inputRows(...)).
    public let model: TransformerModel
    let eh: WeightMatrix
    let enorm: FloatBuffer
    let hnorm: FloatBuffer
    let embedding: TokenEmbedding

    /// The first next-n layer of `trunk`'s file, or nil when it has none (or its stack is not the
    /// standard one). Throws when the file names a next-n layer but its tensors are incomplete.
    public static func load(_ trunk: TransformerModel) throws -> NextNHead? {
        guard trunk.config.nextNLayers > 0, let stack = trunk.body as? StandardStack else { return nil }
        let gguf = trunk.gguf, block = trunk.config.layerCount, e = trunk.config.embeddingLength, vocabulary = trunk.vocabularySize
        let r = WeightReader(gguf, layout: trunk.config.weightLayout)
        func required(_ t: NextNTensorName) throws -> String {
            guard gguf.tensor(t.name) != nil else { throw ModelError.missingTensor(file: gguf.path, name: t.name) }
            return t.name
        }
        let ehName = try required(.ehProjection(block))
        guard let ehInfo = gguf.tensor(ehName), ehInfo.dims == [2 * e, e] else {
            throw ModelError.invalidConfig(file: gguf.path, message: "\(ehName) has shape \(gguf.tensor(ehName)?.dims ?? []), expected [\(2 * e), \(e)]")
        }
        let eh = try r.matrix(named: ehName, rows: e, cols: 2 * e)
        let embedTokens = r.has(NextNTensorName.embedTokens(block).name)
            ? try r.matrix(named: NextNTensorName.embedTokens(block).name, rows: vocabulary, cols: e) : nil
        let head = r.has(NextNTensorName.sharedHead(block).name)
            ? try r.matrix(named: NextNTensorName.sharedHead(block).name, rows: vocabulary, cols: e) : nil
        let headNorm = try r.optionalVector(named: NextNTensorName.sharedHeadNorm(block).name, count: e) ?? trunk.outputNorm
        let enorm = try r.vector(named: try required(.embeddingNorm(block)), count: e)
        let hnorm = try r.vector(named: try required(.hiddenNorm(block)), count: e)
        let layer = try StandardStack(layer: block, of: stack, gguf: gguf)
        let model = TransformerModel(gguf: gguf, config: layer.config, body: layer, tokenEmbedding: embedTokens ?? trunk.tokenEmbedding,
                                     output: head ?? trunk.output, outputNorm: headNorm)
        return NextNHead(model: model, eh: eh, enorm: enorm, hnorm: hnorm,
                         embedding: TokenEmbedding(matrix: embedTokens ?? trunk.tokenEmbedding, scale: trunk.config.embeddingScale))
    }

    init(model: TransformerModel, eh: WeightMatrix, enorm: FloatBuffer, hnorm: FloatBuffer, embedding: TokenEmbedding) {
        self.model = model; self.eh = eh; self.enorm = enorm; self.hnorm = hnorm; self.embedding = embedding
    }

    /// The layer's output hidden state of row `row` of its last pass in `state` (before the head's norm):
    /// what stands in for the model's hidden state when the layer is chained.
    public func outputHidden(row: Int, state: InferenceState) -> UnsafePointer<Float> { UnsafePointer(state.x + row * width) }

    /// The width of the layer's rows.
    public var width: Int { model.config.embeddingLength }

    /// into[t] = W_eh · [rmsnorm(embed(tokens[t])) · enorm ; rmsnorm(hidden[t]) · hnorm] for `count` rows
    /// (hidden: rows of the trunk's width). `pair`: scratch of count × 2E floats.
    public func inputRows(tokens: UnsafePointer<Int32>, hidden: UnsafePointer<Float>, count: Int, ops: any Backend,
                          pair: UnsafeMutablePointer<Float>, into: UnsafeMutablePointer<Float>) {
        let e = width, eps = model.config.rmsEpsilon
        let embedded = RowBlock(pair, rows: count, width: e, stride: 2 * e)
        ops.gatherRows(embedding.matrix, indices: tokens, into: embedded, scale: embedding.scale)
        ops.rmsNorm(embedded, weight: enorm.pointer, into: embedded, epsilon: eps)
        ops.rmsNorm(RowBlock(UnsafeMutablePointer(mutating: hidden), rows: count, width: e), weight: hnorm.pointer,
                    into: RowBlock(pair + e, rows: count, width: e, stride: 2 * e), epsilon: eps)
        ops.multiply(eh, pair, tokens: count, into: into, mode: .batched)
    }
}
