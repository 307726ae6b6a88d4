// Models whose sequence state is more than one KV row per position (DeepSeek V4's compressed cache,
// Qwen3.5's recurrent state) through the real session machinery: a conversation continues the same
// after the session is saved to disk and loaded into a fresh one, and after rewinding to a shorter prompt.

import Foundation
import Testing
import Engine
import Platform
import KVCache
import Models
import Sampling

@Suite struct SideStateSessionTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/frontier")

    func greedy(_ n: Int) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = n
        o.sampler = .greedy
        o.ignoreEOS = true
        return o
    }

    @Test(arguments: ["deepseek4.mxfp4.gguf", "qwen35moe.f32.gguf"])
    func savedSessionContinuesLikeTheOriginal(file: String) throws {
        let loaded = try LoadedModel(path: Self.fixtures.appendingPathComponent(file).path)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("side-\(UUID()).dskv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // 140 prompt tokens cross DeepSeek V4's compressed-entry boundaries (every 4 and at 128).
        let prompt: [Int32] = (0..<140).map { Int32(20 + ($0 * 37) % 400) }
        let original = Session(loaded, contextLength: 512, threads: 2)
        let first = try original.generate(prompt: prompt, options: greedy(6)) { _ in }
        try original.save(to: path)

        let resumed = Session(loaded, contextLength: 512, threads: 2)
        _ = try resumed.load(from: path)
        #expect(resumed.cachedTokens == original.cachedTokens)
        let next = prompt + first.tokens + [41, 42, 43]
        let a = try original.generate(prompt: next, options: greedy(8)) { _ in }
        let b = try resumed.generate(prompt: next, options: greedy(8)) { _ in }
        #expect(a.tokens == b.tokens, "\(file): after load \(b.tokens) vs \(a.tokens)")
        // The file carries the side state: nothing was replayed to rebuild it.
        #expect(resumed.state.cache.pool.replayedPositions == 0)

        // Rewind: a prompt that shares only the first 100 tokens, then the same again from scratch.
        let other = Array(prompt[..<100]) + [7, 8, 9]
        let c = try original.generate(prompt: other, options: greedy(8)) { _ in }
        let fresh = Session(loaded, contextLength: 512, threads: 2)
        let d = try fresh.generate(prompt: other, options: greedy(8)) { _ in }
        #expect(c.tokens == d.tokens, "\(file): after rewind \(c.tokens) vs fresh \(d.tokens)")

        // Loading into a session that holds another conversation replaces its state too.
        _ = try original.load(from: path)
        let replayed = original.state.cache.pool.replayedPositions
        let e = try original.generate(prompt: next, options: greedy(8)) { _ in }
        #expect(e.tokens == a.tokens, "\(file): loaded over another conversation \(e.tokens) vs \(a.tokens)")
        #expect(original.state.cache.pool.replayedPositions == replayed)
    }

    /// A re-checksummed file whose side state does not fit the model is refused, and the session
    /// keeps what it held.
    @Test func sideStateThatDoesNotFitIsRefused() throws {
        let loaded = try LoadedModel(path: Self.fixtures.appendingPathComponent("qwen35moe.f32.gguf").path)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("side-\(UUID()).dskv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let session = Session(loaded, contextLength: 256, threads: 2)
        _ = try session.generate(prompt: (0..<40).map { Int32(30 + $0) }, options: greedy(2)) { _ in }
        try session.save(to: path)
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerBytes = data.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: 12, as: UInt32.self).littleEndian) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 16..<(16 + headerBytes))) as! [String: Any]
        let sideBytes = header["side_state_bytes"] as! Int
        #expect(sideBytes > 0)
        data[data.count - 32 - sideBytes + 16] ^= 0xFF   // the state's position (u64 after the magic)
        var h = SHA256()
        h.update(data.prefix(data.count - 32))
        let digest = h.hexDigest()
        data.replaceSubrange((data.count - 32)..., with: stride(from: 0, to: 64, by: 2).map {
            UInt8(digest[digest.index(digest.startIndex, offsetBy: $0)..<digest.index(digest.startIndex, offsetBy: $0 + 2)], radix: 16)!
        })
        try data.write(to: URL(fileURLWithPath: path))
        let other = Session(loaded, contextLength: 256, threads: 2)
        _ = try other.generate(prompt: [50, 51, 52], options: greedy(2)) { _ in }
        let held = other.cachedTokens
        #expect(throws: SessionFileError.self) { try other.load(from: path) }
        #expect(other.cachedTokens == held)
        do { try other.load(from: path) } catch { #expect("\(error)".contains("side state")) }
    }

    /// An idle sequence swapped out to the KV disk tier takes its side state along (its RAM goes too)
    /// and gets it back when it runs again: nothing replayed, the same answer as never swapped.
    @Test(arguments: ["deepseek4.mxfp4.gguf", "qwen35moe.f32.gguf"])
    func swappedOutSequenceTakesItsStateToDisk(file: String) throws {
        let loaded = try LoadedModel(path: Self.fixtures.appendingPathComponent(file).path)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("side-disk-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Room for one sequence's pages and state and 3 pages more: the second sequence swaps the first out.
        let shape = loaded.model.kvShape()
        let pool = KVPagePool(shape: shape, pageTokens: 32, capacity: 8 + KVPagePool.sidePages(shape, pageTokens: 32),
                              disk: try KVDiskTier(directory: dir, budgetBytes: 1 << 30))
        pool.checkpointLimit = 0   // only the spilled state can spare a replay
        let a = Session(loaded, contextLength: 512, threads: 2, kvPool: pool)
        let b = Session(loaded, contextLength: 512, threads: 2, kvPool: pool)
        let promptA: [Int32] = (0..<140).map { Int32(20 + ($0 * 37) % 400) }
        let promptB: [Int32] = (0..<140).map { Int32(30 + ($0 * 53) % 400) }
        let firstA = try a.generate(prompt: promptA, options: greedy(6)) { _ in }
        _ = try b.generate(prompt: promptB, options: greedy(6)) { _ in }
        #expect(pool.swapOuts > 0)
        #expect(a.state.cache.sideStateSpilled && a.state.cache.auxiliary == nil)
        // Saving reads it back too: the file carries it.
        let path = dir + "/a.dskv"
        try a.save(to: path)
        let resumed = Session(loaded, contextLength: 512, threads: 2)
        _ = try resumed.load(from: path)
        let next = promptA + firstA.tokens + [41, 42, 43]
        let continued = try a.generate(prompt: next, options: greedy(8)) { _ in }
        let fromFile = try resumed.generate(prompt: next, options: greedy(8)) { _ in }
        #expect(pool.replayedPositions == 0 && resumed.state.cache.pool.replayedPositions == 0, "\(file): replayed")
        #expect(fromFile.tokens == continued.tokens)

        let alone = Session(loaded, contextLength: 512, threads: 2)
        _ = try alone.generate(prompt: promptA, options: greedy(6)) { _ in }
        let reference = try alone.generate(prompt: next, options: greedy(8)) { _ in }
        #expect(continued.tokens == reference.tokens, "\(file): after swap-in \(continued.tokens) vs \(reference.tokens)")
    }

    /// A chat turn whose prompt ends a few tokens before what the session holds (the template closes
    /// the answer differently) restarts from the checkpoint at the previous prompt's end and replays
    /// only the answer's tokens up to there, not the conversation; the result equals a fresh session's.
    @Test(arguments: ["deepseek4.mxfp4.gguf", "qwen35moe.f32.gguf"])
    func rollbackRestartsFromTheCheckpoint(file: String) throws {
        let loaded = try LoadedModel(path: Self.fixtures.appendingPathComponent(file).path)
        let prompt: [Int32] = (0..<140).map { Int32(20 + ($0 * 37) % 400) }
        let session = Session(loaded, contextLength: 512, threads: 2)
        let first = try session.generate(prompt: prompt, options: greedy(6)) { _ in }
        let pool = session.state.cache.pool
        #expect(pool.checkpointCount == 3)   // page boundary 128, prompt end 140, answer end 145
        let before = pool.replayedPositions
        let turn = prompt + first.tokens[0..<3] + [41, 42]
        let rolled = try session.generate(prompt: turn, options: greedy(8)) { _ in }
        #expect(pool.replayedPositions - before == 3, "\(file): replayed \(pool.replayedPositions - before)")
        let fresh = try Session(loaded, contextLength: 512, threads: 2).generate(prompt: turn, options: greedy(8)) { _ in }
        #expect(rolled.tokens == fresh.tokens, "\(file): after rollback \(rolled.tokens) vs fresh \(fresh.tokens)")

        // Without checkpoints the same turn replays the whole conversation.
        let plain = Session(loaded, contextLength: 512, threads: 2)
        plain.state.cache.pool.checkpointLimit = 0
        _ = try plain.generate(prompt: prompt, options: greedy(6)) { _ in }
        let again = try plain.generate(prompt: turn, options: greedy(8)) { _ in }
        #expect(plain.state.cache.pool.replayedPositions == 143)
        #expect(again.tokens == fresh.tokens)
    }

    /// Requests through the batch engine sharing a prompt's first pages: the second restores the first
    /// one's checkpoint at the shared page boundary (nothing replayed) and answers as on a cold engine.
    @Test(arguments: ["deepseek4.mxfp4.gguf", "qwen35moe.f32.gguf"])
    func sharedPrefixStartsFromTheCheckpoint(file: String) async throws {
        let loaded = try LoadedModel(path: Self.fixtures.appendingPathComponent(file).path)
        let system: [Int32] = (0..<130).map { Int32(20 + ($0 * 37) % 400) }
        let one = system + [5, 6, 7, 8], two = system + [9, 10, 11]
        func answer(_ engine: BatchEngine, _ prompt: [Int32]) async throws -> (String, Int) {
            let handle = try engine.submit(EngineRequest(prompt: prompt, options: greedy(8)))
            var text = "", cached = -1
            for await event in handle.events {
                switch event {
                case .text(let t, _): text += t
                case .finished(let f): cached = f.cachedPromptTokens
                case .failed(let m): Issue.record("\(file): \(m)")
                default: break
                }
            }
            return (text, cached)
        }
        func engine() -> (BatchEngine, KVPagePool) {
            let pool = KVPagePool(shape: loaded.model.kvShape(), pageTokens: InferenceState.defaultPageTokens,
                                  budgetBytes: 4 * loaded.kvBytes(contextLength: 512, batch: 64))
            return (BatchEngine(loaded, parallel: 2, contextLength: 512, maxBatch: 128, prefillChunk: 64, threads: 2, kvPool: pool), pool)
        }
        let (warm, warmPool) = engine()
        defer { warm.shutdown() }
        _ = try await answer(warm, one)
        let (text, cached) = try await answer(warm, two)
        #expect(cached == 128)
        #expect(warmPool.replayedPositions == 0, "\(file): replayed \(warmPool.replayedPositions)")
        let (cold, _) = engine()
        defer { cold.shutdown() }
        let (coldText, _) = try await answer(cold, two)
        #expect(text == coldText, "\(file): shared prefix '\(text)' vs cold '\(coldText)'")
    }
}
