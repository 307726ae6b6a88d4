// Sessions saved to disk and resumed without prefill, on the real default model; damaged and foreign
// files are refused with a clear error and change nothing.

import Foundation
import Testing
import Engine
import Platform
import Models
import Sampling
import KVCache
import GGUF

@Suite(.serialized, .enabled(if: RealModels.available("smollm2")))
struct SessionFileTests {
    func tempPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("dskv-\(UUID())-\(name).dskv").path
    }

    func greedy(_ n: Int) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = n
        o.sampler = .greedy
        return o
    }

    /// Saving after a turn and loading into a fresh session continues exactly as the original session:
    /// the second turn needs no prefill of the first and gives the same tokens.
    @Test func savedSessionResumesWithoutPrefill() throws {
        let loaded = try RealModels.load("smollm2")
        let path = tempPath("resume")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let original = Session(loaded, contextLength: 512, threads: 2)
        var messages = [ChatMessage(role: "user", content: "Name a colour.")]
        let first = try original.generate(prompt: try PromptBuilder.chatPrompt(loaded, messages: messages), options: greedy(12)) { _ in }
        messages.append(ChatMessage(role: "assistant", content: first.text))
        try original.save(to: path, messages: messages)

        let resumed = Session(loaded, contextLength: 512, threads: 2)
        let restored = try resumed.load(from: path)
        #expect(restored == messages)
        #expect(resumed.cachedTokens == original.cachedTokens)

        messages.append(ChatMessage(role: "user", content: "And another one?"))
        let prompt = try PromptBuilder.chatPrompt(loaded, messages: messages)
        let a = try original.generate(prompt: prompt, options: greedy(12)) { _ in }
        let b = try resumed.generate(prompt: prompt, options: greedy(12)) { _ in }
        #expect(b.promptEvaluated == a.promptEvaluated && b.promptEvaluated < prompt.count / 2, "prefill after load: \(b.promptEvaluated) of \(prompt.count)")
        #expect(a.tokens == b.tokens)
    }

    func savedFile(_ loaded: LoadedModel) throws -> (String, Data) {
        let path = tempPath("damaged")
        let s = Session(loaded, contextLength: 128, threads: 2)
        _ = try s.evaluate(loaded.tokenizer.encode("The sea is wide and deep.", addSpecial: true, parseSpecial: false))
        try s.save(to: path)
        return (path, try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Each damage gives its own error; the session keeps what it held.
    @Test func damagedFilesAreRefused() throws {
        let loaded = try RealModels.load("smollm2")
        let (path, good) = try savedFile(loaded)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let target = Session(loaded, contextLength: 128, threads: 2)
        let kept = loaded.tokenizer.encode("Hello", addSpecial: true, parseSpecial: false)
        _ = try target.evaluate(kept)

        func expectRefused(_ bytes: Data, _ check: (SessionFileError) -> Bool, _ what: String) throws {
            try bytes.write(to: URL(fileURLWithPath: path))
            do {
                try target.load(from: path)
                Issue.record("\(what): loaded")
            } catch let e as SessionFileError {
                #expect(check(e), "\(what): \(e)")
                #expect("\(e)".contains(path))
            }
            #expect(target.cachedTokens == kept, "\(what): the session changed")
        }
        var flipped = good
        flipped[flipped.count / 2] ^= 0x40
        try expectRefused(flipped, { if case .corrupt = $0 { return true }; return false }, "flipped byte")
        try expectRefused(good.prefix(good.count - 1000), { if case .truncated = $0 { return true }; return false }, "truncated")
        try expectRefused(good.prefix(10), { if case .truncated = $0 { return true }; return false }, "cut in the header")
        try expectRefused(Data("GGUF this is something else entirely".utf8), { if case .notASessionFile = $0 { return true }; return false }, "other file")
        var version = good
        version[8] = 9
        try expectRefused(version, { if case .unsupportedVersion = $0 { return true }; return false }, "future version")
    }

    /// A session saved with one model is refused by another, naming both.
    @Test(.enabled(if: RealModels.available("gemma3-270m")))
    func foreignModelIsRefused() throws {
        let smol = try RealModels.load("smollm2")
        let gemma = try RealModels.load("gemma3-270m")
        let (path, _) = try savedFile(smol)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let target = Session(gemma, contextLength: 128, threads: 2)
        #expect(throws: SessionFileError.self) { try target.load(from: path) }
        do { try target.load(from: path) } catch {
            #expect("\(error)".contains("another model") && "\(error)".contains(gemma.fingerprint))
        }
    }

    /// F16 sessions save half the bytes and load back identically; an F32 file is refused by an F16
    /// session (the KV type is part of the identity).
    @Test func f16SessionsRoundTripAndTypesMustMatch() throws {
        let loaded = try RealModels.load("smollm2")
        let tokens = loaded.tokenizer.encode("The sea is wide and deep, and the sky above it is grey.", addSpecial: true, parseSpecial: false)
        let f16 = Session(loaded, contextLength: 128, threads: 2, kvType: .f16)
        let a = Array(try f16.evaluate(tokens).logits)
        let path16 = tempPath("f16"), path32 = tempPath("f32")
        defer { for p in [path16, path32] { try? FileManager.default.removeItem(atPath: p) } }
        try f16.save(to: path16)
        let f32 = Session(loaded, contextLength: 128, threads: 2)
        _ = try f32.evaluate(tokens)
        try f32.save(to: path32)
        let size16 = try FileManager.default.attributesOfItem(atPath: path16)[.size] as! Int
        let size32 = try FileManager.default.attributesOfItem(atPath: path32)[.size] as! Int
        #expect(size16 < size32 * 6 / 10)
        let restored = Session(loaded, contextLength: 128, threads: 2, kvType: .f16)
        try restored.load(from: path16)
        // The next token's logits after loading equal those of the session that computed the rows.
        let next: Int32 = 42
        let x = Array(try f16.evaluate(tokens + [next]).logits)
        let y = Array(try restored.evaluate(tokens + [next]).logits)
        #expect(x == y && !a.isEmpty)
        do {
            try restored.load(from: path32)
            Issue.record("an f32 session file loaded into an f16 session")
        } catch {
            #expect("\(error)".contains("f32 KV") && "\(error)".contains("f16 KV"), "\(error)")
        }
    }

    @Test func sessionNamesAreChecked() throws {
        #expect(throws: SessionFileError.self) { try Session.sessionPath(named: "../etc/passwd") }
        #expect(throws: SessionFileError.self) { try Session.sessionPath(named: "") }
        #expect(try Session.sessionPath(named: "chat-1.v2").hasSuffix("/chat-1.v2.dskv"))
    }
}

/// The disk tier on the real model: two conversations share a KV pool too small for both; each turn of
/// one swaps the other's pages to disk. Their answers equal those of each conversation alone.
@Suite(.serialized, .enabled(if: RealModels.available("smollm2")))
struct KVDiskTierTests {
    @Test func spillingGivesIdenticalGreedyOutput() throws {
        let loaded = try RealModels.load("smollm2")
        var options = GenerationOptions()
        options.maxTokens = 40
        options.sampler = .greedy
        let questions = [["Name a fruit.", "And a vegetable?", "And a nut?"], ["Name a planet.", "And a star?", "And a moon?"]]
        func conversation(_ session: Session, _ turns: [String], _ i: Int, _ messages: inout [ChatMessage]) throws -> [Int32] {
            messages.append(ChatMessage(role: "user", content: turns[i]))
            let r = try session.generate(prompt: try PromptBuilder.chatPrompt(loaded, messages: messages), options: options) { _ in }
            messages.append(ChatMessage(role: "assistant", content: r.text))
            return r.tokens
        }
        // Alone, each with its own pool.
        var alone: [[Int32]] = []
        for q in questions {
            let s = Session(loaded, contextLength: 256, threads: 2)
            var m: [ChatMessage] = []
            alone.append(try conversation(s, q, 0, &m) + conversation(s, q, 1, &m) + conversation(s, q, 2, &m))
        }
        // Together in a pool of 6 pages (192 positions, less than both conversations) with a disk tier:
        // turns alternate.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvdisk-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = try KVDiskTier(directory: dir, budgetBytes: 64 << 20)
        let pool = KVPagePool(shape: loaded.model.kvShape(), pageTokens: 32, capacity: 6, disk: disk)
        let sessions = questions.map { _ in Session(loaded, contextLength: 256, threads: 2, kvPool: pool) }
        var messages: [[ChatMessage]] = [[], []]
        var together: [[Int32]] = [[], []]
        for turn in 0..<3 {
            for i in 0..<2 { together[i] += try conversation(sessions[i], questions[i], turn, &messages[i]) }
        }
        #expect(pool.swapOuts > 0 && disk.pagesRead > 0, "the pool should have spilled")
        #expect(together == alone)
    }
}

/// Q8_0 KV pages on the real model stay close to the F32 cache (prompt and a decode step over 601
/// positions); head sizes that are not whole blocks are refused. (The kernels' exactness over Q8_0 rows
/// is checked on an F32 fixture in ModelsTests/LongContextTests: here activation quantization amplifies
/// any rounding difference.)
@Suite(.serialized, .enabled(if: RealModels.available("smollm2")))
struct Q8KVTests {
    @Test func q8CacheStaysCloseToF32() throws {
        let loaded = try RealModels.load("smollm2")
        let text = try String(contentsOf: engineFixtures.appendingPathComponent("pride-and-prejudice.txt"), encoding: .utf8)
        let tokens = Array(loaded.tokenizer.encode(String(text.prefix(4000)), addSpecial: true, parseSpecial: false).prefix(600))
        var results: [[Float]] = []
        for type in [KVType.f32, .q8_0] {
            let s = Session(loaded, contextLength: 1024, threads: 2, kvType: type)
            #expect(s.state.cache.pool.shape.type == type)
            var out = Array(try s.evaluate(tokens).logits)
            out += Array(try s.evaluate(tokens + [tokens[5]]).logits)   // one decode step over 601 positions
            results.append(out)
        }
        let vocab = loaded.model.vocabularySize
        func top(_ v: [Float], _ row: Int) -> Int { (0..<vocab).max { v[row * vocab + $0] < v[row * vocab + $1] }! }
        // Logits span ~±25 here; the perplexity cost is ~0.1% (docs/performance.md).
        let diffs = zip(results[0], results[1]).map { abs($0 - $1) }
        let mean = diffs.reduce(0, +) / Float(diffs.count)
        #expect(diffs.max()! < 1.5 && mean < 0.3, "q8_0 KV |Δlogit| max \(diffs.max()!) mean \(mean)")
        #expect(top(results[0], 0) == top(results[1], 0) && top(results[0], 1) == top(results[1], 1))
        let pool = Session(loaded, contextLength: 64, threads: 1, kvType: .q8_0).state.cache.pool
        #expect(pool.shape.bytesPerPosition * 100 <= loaded.model.kvShape().bytesPerPosition * 27)
    }

    @Test func q8NeedsWholeBlocks() throws {
        let tiny = try ModelRegistry.load(GGUFFile(path: engineFixtures.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ModelsTests/Fixtures/llama.f32.gguf").path))
        let problem = tiny.kvTypeProblem(.q8_0)
        #expect(problem?.contains("divisible by 32") == true, "\(problem ?? "nil")")
        #expect(tiny.kvTypeProblem(.f16) == nil)
    }
}

/// Sliding-window layers (the Gemma 3 fixture: window 8) keep only their window's pages; a session file
/// stores only the rows each layer still holds, resumes bit-exactly, and a file whose rows do not cover
/// a layer's window is refused even with a valid checksum.
@Suite struct SlidingWindowSessionTests {
    let fixture = modelFixtures.appendingPathComponent("gemma3.f32.gguf").path
    let prompt: [Int32] = (0..<100).map { Int32($0 * 7 % 250 + 3) }

    @Test func windowRowsRoundTripAndMissingRowsAreRefused() throws {
        let loaded = try LoadedModel(path: fixture)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dskv-\(UUID())-window.dskv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let original = Session(loaded, contextLength: 256, threads: 2)
        _ = try original.evaluate(prompt)
        let cache = original.state.cache
        let groups = cache.pool.groups
        let sliding = (0..<loaded.model.config.layerCount).filter { groups.retention[groups.group[$0]] != .all }
        let global = (0..<loaded.model.config.layerCount).filter { groups.retention[groups.group[$0]] == .all }
        #expect(!sliding.isEmpty && sliding.allSatisfy { cache.firstRetainedPosition(layer: $0) > 0 })
        #expect(global.allSatisfy { cache.firstRetainedPosition(layer: $0) == 0 })
        try original.save(to: path)

        let resumed = Session(loaded, contextLength: 256, threads: 2)
        try resumed.load(from: path)
        #expect(resumed.cachedTokens == prompt)
        let next: [Int32] = [5, 17, 29]
        let a = Array(try loaded.model.forward(next, startPosition: 100, state: original.state, logits: .all))
        let b = Array(try loaded.model.forward(next, startPosition: 100, state: resumed.state, logits: .all))
        #expect(a == b)

        // Claim a global layer starts at row 32 (dropping its rows 0..<32 from the file), re-checksummed.
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerBytes = Int(data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self) })
        var header = try JSONSerialization.jsonObject(with: data.subdata(in: 16..<(16 + headerBytes))) as! [String: Any]
        var firstRows = header["first_rows"] as! [Int]
        let layer = global[0], kBytes = (header["k_row_floats"] as! Int) * 4, vBytes = (header["v_row_floats"] as! Int) * 4
        let offset = 16 + headerBytes + (0..<layer).reduce(0) { $0 + (prompt.count - firstRows[$1]) * (kBytes + vBytes) }
        firstRows[layer] = 32
        header["first_rows"] = firstRows
        let json = try JSONSerialization.data(withJSONObject: header)
        var forged = Data(data.prefix(12))
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { forged.append(contentsOf: $0) }
        forged.append(json)
        forged.append(data.subdata(in: (16 + headerBytes)..<offset))
        let vStart = offset + 100 * kBytes
        forged.append(data.subdata(in: (offset + 32 * kBytes)..<vStart))                  // K rows 32..<100
        forged.append(data.subdata(in: (vStart + 32 * vBytes)..<(data.count - 32)))       // V rows 32..<100, the rest
        var h = SHA256()
        h.update(forged)
        let digest = h.hexDigest()
        forged.append(contentsOf: stride(from: 0, to: 64, by: 2).map { UInt8(digest.dropFirst($0).prefix(2), radix: 16)! })
        try forged.write(to: URL(fileURLWithPath: path))
        #expect { try resumed.load(from: path) } throws: { error in
            guard case SessionFileError.corrupt(_, let why) = error else { return false }
            return why.contains("layer \(layer)")
        }
        #expect(resumed.cachedTokens == prompt + next)
    }
}
