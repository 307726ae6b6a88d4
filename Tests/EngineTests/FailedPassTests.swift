// Nothing wrong enters a shared cache. A forward pass whose expert read fails (the model file was cut
// short after it was loaded) fails its request with a clear error and leaves nothing of itself in the
// shared KV pool: no page it wrote is in the prefix cache, the sequence stands where it stood before;
// once the file is whole again the same request is computed afresh and gives the right answer. And a
// model whose vocabulary disagrees with its tokenizer's is refused at load.

import Foundation
import Testing
import Engine
import GGUF
import KVCache
import Models
import Sampling

@Suite(.serialized) struct FailedPassTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/qwen3moe.f32.gguf").path
    /// 80 tokens: two full pages of 32 positions (what the prefix cache would register) and a part page.
    static let prompt: [Int32] = (0..<80).map { Int32(3 + ($0 * 37) % 500) }

    func greedy(_ n: Int) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = n
        o.sampler = .greedy
        o.ignoreEOS = true
        return o
    }

    /// The fixture rewritten with the routed expert tensors at the end of the file (the rest in its
    /// order), and where the last layer's experts start: cutting the file there takes only bytes the
    /// expert cache reads with pread, never a tensor used through the mapping.
    static func expertsLast(in dir: URL) throws -> (path: String, cut: Int) {
        let g = try GGUFFile(path: fixture)
        var w = GGUFWriter(alignment: g.alignment)
        for key in g.metadataKeys { w.set(key, g[key]!) }
        let isExpert = { (t: GGUFTensorInfo) in t.name.hasSuffix("_exps.weight") }
        for t in g.tensors.filter({ !isExpert($0) }) + g.tensors.filter(isExpert) {
            try w.addTensor(name: t.name, dims: t.dims, type: t.type, data: Array(UnsafeRawBufferPointer(start: g.data(of: t), count: t.byteCount)))
        }
        let path = dir.appendingPathComponent("qwen3moe-experts-last.gguf").path
        try w.write(to: path)
        let out = try GGUFFile(path: path)
        let cut = out.tensors.filter { $0.name.hasPrefix("blk.1.") && isExpert($0) }.map { out.dataOffset + $0.offset }.min()!
        #expect(out.tensors.allSatisfy { isExpert($0) || out.dataOffset + $0.offset + $0.byteCount <= cut })
        return (path, cut)
    }

    /// The model at `path` with its routed experts streamed through two slots (buffered reads).
    static func streaming(_ path: String) throws -> LoadedModel {
        let loaded = try LoadedModel(path: path, streamingExperts: true)
        guard let f = loaded.model.moeBlocks.first?.weights else {
            throw CocoaError(.featureUnsupported)
        }
        loaded.model.expertCache = try ExpertCache(path: path, fileBase: loaded.gguf.base, expertBytes: ExpertCache.expertBytes([f.gate[0], f.up[0], f.down[0]]),
                                                   slots: 2, readMode: .buffered, ioThreads: 2, prefetch: false)
        return loaded
    }

    /// Cuts the file at `offset` and returns what was cut, to put back with `restore`.
    static func cut(_ path: String, at offset: Int) throws -> Data {
        let all = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(truncate(path, off_t(offset)) == 0)
        return all.suffix(from: offset)
    }

    static func restore(_ path: String, _ tail: Data, at offset: Int) throws {
        let h = try #require(FileHandle(forWritingAtPath: path))
        try h.seek(toOffset: UInt64(offset))
        try h.write(contentsOf: tail)
        try h.close()
    }

    /// Runs one request; its generated tokens, prompt tokens taken from the cache, and failure message.
    static func answer(_ engine: BatchEngine, _ prompt: [Int32], _ options: GenerationOptions) async throws -> (tokens: [Int32], cached: Int, failure: String?) {
        let handle = try engine.submit(EngineRequest(prompt: prompt, options: options, topLogprobs: 0))
        var tokens: [Int32] = [], cached = -1, failure: String?
        for await event in handle.events {
            switch event {
            case .text(_, let t): tokens += t.map(\.token)
            case .finished(let f): cached = f.cachedPromptTokens
            case .failed(let m): failure = m
            default: break
            }
        }
        return (tokens, cached, failure)
    }

    @Test func failedExpertReadLeavesNothingInTheBatchEnginesPool() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-failed-pass-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let reference = BatchEngine(try LoadedModel(path: Self.fixture), parallel: 1, contextLength: 256, maxBatch: 128, prefillChunk: 64, threads: 2)
        let expected = try await Self.answer(reference, Self.prompt, greedy(6))
        reference.shutdown()
        #expect(expected.failure == nil && expected.tokens.count == 6)

        let (path, offset) = try Self.expertsLast(in: dir)
        let loaded = try Self.streaming(path)
        let engine = BatchEngine(loaded, parallel: 1, contextLength: 256, maxBatch: 128, prefillChunk: 64, threads: 2)
        defer { engine.shutdown() }
        let tail = try Self.cut(path, at: offset)
        let failed = try await Self.answer(engine, Self.prompt, greedy(6))
        #expect(failed.failure?.contains("the model file could not be read") == true, "\(failed.failure ?? "no failure")")
        #expect(failed.tokens.isEmpty)
        // The first pass (64 positions, two full pages) failed: none of its pages may be in the cache.
        #expect(engine.pool.cachedPages == 0, "\(engine.pool.cachedPages) pages of the failed pass were cached")
        #expect(engine.pool.freePages == engine.pool.capacity)

        try Self.restore(path, tail, at: offset)
        let again = try await Self.answer(engine, Self.prompt, greedy(6))
        #expect(again.failure == nil)
        #expect(again.cached == 0, "the second request reused \(again.cached) positions")
        #expect(again.tokens == expected.tokens)
    }

    @Test func failedExpertReadLeavesTheSessionWhereItStood() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-failed-session-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let expected = try Session(try LoadedModel(path: Self.fixture), contextLength: 256, threads: 2)
            .generate(prompt: Self.prompt, options: greedy(6)) { _ in }

        let (path, offset) = try Self.expertsLast(in: dir)
        let loaded = try Self.streaming(path)
        let pool = try loaded.kvPool(budgetBytes: 4 * loaded.kvBytes(contextLength: 256, batch: 32))
        // Prompt in chunks of 32: the first chunk's layer-1 experts are already unreadable.
        let session = Session(loaded, contextLength: 256, threads: 2, batch: 32, kvPool: pool)
        let tail = try Self.cut(path, at: offset)
        #expect { try session.generate(prompt: Self.prompt, options: greedy(6)) { _ in } } throws: { error in
            "\(error)".contains("the model file could not be read")
        }
        #expect(session.cachedTokens.isEmpty)
        #expect(pool.cachedPages == 0 && pool.freePages == pool.capacity)

        try Self.restore(path, tail, at: offset)
        let again = try session.generate(prompt: Self.prompt, options: greedy(6)) { _ in }
        #expect(again.promptEvaluated == Self.prompt.count)
        #expect(again.tokens == expected.tokens)
    }

    /// The tiny llama fixture with `extraTokens` extra tokenizer entries, or with its embedding and output
    /// cut to `rows` rows.
    static func mismatched(in dir: URL, extraTokens: Int = 0, rows: Int? = nil) throws -> String {
        let src = URL(fileURLWithPath: fixture).deletingLastPathComponent().appendingPathComponent("llama.f32.gguf").path
        let g = try GGUFFile(path: src)
        var w = GGUFWriter(alignment: g.alignment)
        for key in g.metadataKeys {
            var value = g[key]!
            if extraTokens > 0, case .array(let type, var items) = value {
                switch key {
                case "tokenizer.ggml.tokens": items += (0..<extraTokens).map { .string("<extra_\($0)>") }
                case "tokenizer.ggml.scores", "tokenizer.ggml.token_type": items += Array(repeating: items.last!, count: extraTokens)
                default: break
                }
                value = .array(type, items)
            }
            w.set(key, value)
        }
        for t in g.tensors {
            var dims = t.dims, bytes = Array(UnsafeRawBufferPointer(start: g.data(of: t), count: t.byteCount))
            if let rows, t.name == "token_embd.weight" || t.name == "output.weight" {
                dims[1] = rows
                bytes = Array(bytes.prefix(rows * t.rowBytes))
            }
            try w.addTensor(name: t.name, dims: dims, type: t.type, data: bytes)
        }
        let path = dir.appendingPathComponent("mismatch-\(extraTokens)-\(rows ?? 0).gguf").path
        try w.write(to: path)
        return path
    }

    @Test func vocabularySizesMustAgree() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-vocab-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (path, model, tokenizer) in [(try Self.mismatched(in: dir, extraTokens: 8), 512, 520),
                                         (try Self.mismatched(in: dir, rows: 500), 500, 512)] {
            #expect { _ = try LoadedModel(path: path) } throws: { error in
                let text = "\(error)"
                return text.contains(path) && text.contains("vocabulary") && text.contains("(\(model) rows") && text.contains("(\(tokenizer) entries")
            }
        }
    }
}
