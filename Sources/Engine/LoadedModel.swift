// A model file opened for use: GGUF mapping, architecture, tokenizer and chat template.

import Foundation
import GGUF
import Kernels
import KVCache
import Models
import Tokenizers
import ChatTemplate

public final class LoadedModel: @unchecked Sendable {
    public let path: String
    public let gguf: GGUFFile
    public let model: TransformerModel
    public let tokenizer: Tokenizer
    /// nil when the file has no usable chat template (base models): raw completion.
    public let chatTemplate: ChatTemplate?
    public let chatTemplateError: String?
    /// Special tokens that may still match inside message text: user-defined tokens that are not the chat
    /// template's markup (their text does not occur in the template source).
    public let contentTokenPolicy: LiteralTokenPolicy
    public let loadSeconds: Double

    /// Loads the model at `path`. With `streamingExperts` (a --ram-budget that may stream routed experts)
    /// the mapping reads only what is touched, the resident tensors asked for whole, so the page cache
    /// does not fill with expert pages read around them.
    /// Dense matrices are held as `weightLayout` asks (packed copies where the CPU has the kernel); under
    /// a RAM budget (`streamingExperts`) they stay in place, as the placement counts them at file size.
    /// With `writableWeights` the file is mapped copy-on-write and every matrix used in place (no packed
    /// copies), so that changing a tensor's bytes in memory (`gguf.mutableData(of:)`) changes the model.
    public init(path: String, streamingExperts: Bool = false, weightLayout: WeightLayout = .packed, writableWeights: Bool = false) throws {
        let start = Date()
        self.path = path
        let weightLayout = writableWeights ? .rowMajor : weightLayout
        gguf = try GGUFFile(path: path, randomAccess: streamingExperts, writable: writableWeights)
        if streamingExperts {
            for t in gguf.tensors where !LoadedModel.isRoutedExpertTensor(t.name) { gguf.willNeed(t) }
        }
        model = try ModelRegistry.load(gguf, weightLayout: streamingExperts ? .rowMajor : weightLayout)
        tokenizer = try Tokenizer(LoadedModel.vocabulary(from: gguf))
        // Token ids are shared: the logits (one per output row) are sampled into ids the tokenizer must
        // know, and the tokenizer's ids index the embedding rows. llama.cpp requires the same.
        guard model.vocabularySize == tokenizer.vocabularySize else {
            throw ModelError.invalidConfig(file: path, message:
                "the model's vocabulary (\(model.vocabularySize) rows of \(TensorName.tokenEmbedding.name)) and the tokenizer's "
                + "(\(tokenizer.vocabularySize) entries of tokenizer.ggml.tokens) differ; the file is inconsistent")
        }
        if let source = gguf["tokenizer.chat_template"]?.string {
            do { chatTemplate = try ChatTemplate(source); chatTemplateError = nil } catch {
                chatTemplate = nil; chatTemplateError = "\(error)"
            }
        } else {
            chatTemplate = nil; chatTemplateError = nil
        }
        let templateSource = gguf["tokenizer.chat_template"]?.string ?? ""
        contentTokenPolicy = tokenizer.literalTokenPolicy { text in
            text.contains { !$0.isWhitespace } && templateSource.contains(text)
        }
        loadSeconds = Date().timeIntervalSince(start)
    }

    /// Whether the model's chat template renders a `tools` list itself (else tools are described in
    /// the system message).
    public var templateRendersTools: Bool {
        guard chatTemplate != nil, let source = gguf["tokenizer.chat_template"]?.string else { return false }
        return source.contains("tools")
    }

    private var sharedPool: KVPagePool?
    private let poolLock = NSLock()

    /// One KV page pool per loaded model, shared by its sessions so prefix pages computed by one are
    /// reused by the others; created on first use with `budgetBytes` of RAM and, with `diskDirectory`,
    /// a disk tier of `diskBudgetBytes` for idle sessions' pages.
    public func kvPool(budgetBytes: Int, type: KVType = .f32, diskDirectory: String? = nil,
                       diskBudgetBytes: Int = 20 << 30) throws -> KVPagePool {
        poolLock.lock()
        defer { poolLock.unlock() }
        if let p = sharedPool { return p }
        let disk = try diskDirectory.map { try KVDiskTier(directory: $0, budgetBytes: diskBudgetBytes) }
        let p = KVPagePool(shape: model.kvShape(type: type), pageTokens: InferenceState.defaultPageTokens,
                           budgetBytes: budgetBytes, disk: disk)
        sharedPool = p
        return p
    }

    /// Bytes of KV one position takes (all layers).
    public func kvBytesPerPosition(_ type: KVType = .f32) -> Int { model.kvShape(type: type).bytesPerPosition }

    /// Bytes of KV pages one sequence of `contextLength` positions needs at most (sliding-window layers
    /// count only their window).
    public func kvBytes(contextLength: Int, batch: Int, type: KVType = .f32) -> Int {
        RuntimeOptions.kvBudgetBytes(model, contextLength: contextLength, prefillChunk: batch, type: type, sequences: 1)
    }

    public var name: String { gguf["general.name"]?.string ?? URL(fileURLWithPath: path).lastPathComponent }

    /// Tokenizer inputs from `tokenizer.ggml.*` metadata.
    public static func vocabulary(from g: GGUFFile) throws -> TokenizerVocabulary {
        guard let model = g["tokenizer.ggml.model"]?.string else {
            throw ModelError.missingMetadata(file: g.path, key: "tokenizer.ggml.model")
        }
        guard let tokens = g["tokenizer.ggml.tokens"]?.stringArray, !tokens.isEmpty else {
            throw ModelError.missingMetadata(file: g.path, key: "tokenizer.ggml.tokens")
        }
        var v = TokenizerVocabulary(model: model, tokens: tokens)
        v.pre = g["tokenizer.ggml.pre"]?.string
        v.scores = g["tokenizer.ggml.scores"]?.floatArray
        v.tokenTypes = g["tokenizer.ggml.token_type"]?.intArray.map { $0.map { Int32($0) } }
        v.merges = g["tokenizer.ggml.merges"]?.stringArray
        v.bosId = g["tokenizer.ggml.bos_token_id"]?.int
        v.eosId = g["tokenizer.ggml.eos_token_id"]?.int
        v.unknownId = g["tokenizer.ggml.unknown_token_id"]?.int
        v.paddingId = g["tokenizer.ggml.padding_token_id"]?.int
        v.eotId = g["tokenizer.ggml.eot_token_id"]?.int
        v.addBos = g["tokenizer.ggml.add_bos_token"]?.bool
        v.addEos = g["tokenizer.ggml.add_eos_token"]?.bool
        v.addSpacePrefix = g["tokenizer.ggml.add_space_prefix"]?.bool
        return v
    }

    /// Reads the weights into the page cache now, in file order, calling `progress` with the bytes read
    /// and their total (every 8 MiB): the first forward pass would otherwise fault them in page by page,
    /// at a fraction of the storage's speed. `residentOnly`: all but the routed experts (which a RAM budget
    /// streams, or an expert-parallel rank holds a share of). A pipeline stage reads its own tensors only.
    /// Returns false, reading nothing, when they would not fit in the memory available now (they would only
    /// push each other out) or the file cannot be read.
    @discardableResult
    public func readIn(residentOnly: Bool, progress: (Int64, Int64) -> Void) -> Bool {
        // File ranges of the tensors, adjacent ones merged.
        var ranges: [(start: Int, end: Int)] = []
        for tensor in gguf.tensors.sorted(by: { $0.offset < $1.offset })
        where model.holds(tensor: tensor.name) && (!residentOnly || !LoadedModel.isRoutedExpertTensor(tensor.name)) {
            let start = gguf.dataOffset + tensor.offset, end = start + tensor.byteCount
            if let last = ranges.last, start <= last.end + 4096 { ranges[ranges.count - 1].end = max(last.end, end) } else { ranges.append((start, end)) }
        }
        let total = Int64(ranges.reduce(0) { $0 + $1.end - $1.start })
        guard let available = LoadedModel.availableMemory(), total < available * 9 / 10 else { return false }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let chunk = 8 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        for range in ranges {
            var offset = range.start
            while offset < range.end {
                let n = pread(fd, buffer, min(chunk, range.end - offset), off_t(offset))
                if n <= 0 { return false }
                offset += n
                done += Int64(n)
                progress(done, total)
            }
        }
        return true
    }

    /// Bytes of memory available now (Linux: MemAvailable; elsewhere the physical memory), nil if unknown.
    static func availableMemory() -> Int64? {
        #if os(Linux)
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
              let kib = Int64(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kib * 1024
        #else
        return Int64(ProcessInfo.processInfo.physicalMemory)
        #endif
    }

    /// Token text of BOS/EOS for templates.
    public func tokenText(_ id: Int32?) -> String {
        guard let id else { return "" }
        return String(decoding: tokenizer.tokenPiece(id), as: UTF8.self)
    }
}
