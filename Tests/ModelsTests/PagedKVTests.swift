// The paged KV cache against a contiguous one (a single page holding the whole context), bit for bit,
// on every fixture architecture: scattered pages, prefix pages shared between sequences, and
// copy-on-write when a sequence diverges inside a shared page.

import Testing
import KVCache
import Models

@Suite struct PagedKVTests {
    /// A contiguous cache: one page covers the whole context.
    func contiguousState(_ model: TransformerModel, batch: Int = 512) -> InferenceState {
        let shape = model.kvShape()
        let pool = KVPagePool(shape: shape, pageTokens: 64, capacity: KVLayerGroups(shape).count)
        return InferenceState(model: model, contextLength: 64, maxBatch: batch, threads: 2, kvPool: pool)
    }

    /// A pool of 4-position pages whose free list was shuffled, so a sequence's pages are scattered.
    func scatteredPool(_ model: TransformerModel, capacity: Int = 48) throws -> KVPagePool {
        let shape = model.kvShape()
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: capacity * KVLayerGroups(shape).count)
        // Sequences of 1-3 pages, released in allocation order: the free stack ends up interleaved.
        var holders: [KVSequence] = []
        for i in 0..<6 {
            let s = KVSequence(pool: pool, maxPositions: 64)
            try s.prepareWrite(start: 0, count: 4 * (i % 3 + 1))
            holders.append(s)
        }
        while !holders.isEmpty { holders.removeFirst() }
        return pool
    }

    func logitsRows(_ p: UnsafeBufferPointer<Float>) -> [Float] { Array(p) }

    @Test(arguments: TinyFixtureTests.architectures)
    func pagedMatchesContiguousBitwise(arch: String) throws {
        let golden = try loadGolden(arch)
        let model = try loadModel(arch, "f32")
        let pool = try scatteredPool(model)
        let paged = InferenceState(model: model, contextLength: 64, maxBatch: 5, threads: 2, kvPool: pool)
        let reference = contiguousState(model, batch: 5)
        var a = logitsRows(try model.forward(golden.token_ids, startPosition: 0, state: paged, logits: .all))
        var b = logitsRows(try model.forward(golden.token_ids, startPosition: 0, state: reference, logits: .all))
        #expect(a == b, "\(arch): prompt logits differ")
        for step in 0..<8 {
            let next = Int32(golden.greedy.next_ids[step])
            a = logitsRows(try model.forward([next], startPosition: paged.position, state: paged, logits: .last))
            b = logitsRows(try model.forward([next], startPosition: reference.position, state: reference, logits: .last))
            #expect(a == b, "\(arch): decode step \(step) differs")
        }
        #expect(paged.cache.pageCount == (golden.token_ids.count + 8 + 3) / 4)
        let table = (0..<paged.cache.pageCount).map { paged.cache.pageTable[$0] }
        #expect(table != table.sorted(), "pages should be scattered: \(table)")
    }

    @Test(arguments: TinyFixtureTests.architectures)
    func sharedPrefixAndCopyOnWriteMatchContiguous(arch: String) throws {
        let golden = try loadGolden(arch)
        let model = try loadModel(arch, "f32")
        let tokens = golden.token_ids   // 24 tokens
        let pool = try scatteredPool(model)
        // Sequence A computes the whole prompt; B attaches A's first 4 pages (16 positions) and goes on
        // with a different tail.
        let stateA = InferenceState(model: model, contextLength: 64, maxBatch: 512, threads: 2, kvPool: pool)
        _ = try model.forward(tokens, startPosition: 0, state: stateA, logits: .none)
        let stateB = InferenceState(model: model, contextLength: 64, maxBatch: 512, threads: 2, kvPool: pool)
        let tail: [Int32] = [7, 300, 42, 11]
        let promptB = Array(tokens[0..<16]) + tail
        #expect(stateB.cache.attachCachedPrefix(of: promptB, limit: promptB.count - 1) == 16)
        // Page tables of a layer that keeps every position (sliding-window layers drop early pages).
        let full = pool.shape.retention.firstIndex(of: .all) ?? 0
        let tableA = stateA.cache.pageTable(forLayer: full), tableB = stateB.cache.pageTable(forLayer: full)
        #expect(tableB[3] == tableA[3])
        let b = logitsRows(try model.forward(tail, startPosition: 16, state: stateB, logits: .all))
        // Reference: the same prefix rows (computed in a 24-token batch), then the same tail.
        let ref = contiguousState(model)
        _ = try model.forward(tokens, startPosition: 0, state: ref, logits: .none)
        ref.cache.truncate(to: 16)
        let r = logitsRows(try model.forward(tail, startPosition: 16, state: ref, logits: .all))
        #expect(b == r, "\(arch): logits after a shared prefix differ")

        // B rolls back into the shared page 3 (positions 12..<16) and writes there: it copies the page.
        stateB.cache.truncate(to: 14)
        _ = try model.forward([5, 6], startPosition: 14, state: stateB, logits: .last)
        #expect(tableB[3] != tableA[3])
        #expect(tableB[2] == tableA[2])
        // A's rows are untouched: its next token's logits equal a contiguous run's.
        let next = Int32(golden.greedy.next_ids[0])
        let a = logitsRows(try model.forward([next], startPosition: 24, state: stateA, logits: .last))
        let refA = contiguousState(model)
        _ = try model.forward(tokens, startPosition: 0, state: refA, logits: .none)
        let ra = logitsRows(try model.forward([next], startPosition: 24, state: refA, logits: .last))
        #expect(a == ra, "\(arch): the sharing sequence's logits changed after the other diverged")
    }
}

/// Split-K decode (positions split across threads, partial softmax merged) against unsplit decode on a
/// context long enough to split (≥ 512 positions): the same logits within rounding.
@Suite struct SplitKDecodeTests {
    @Test(arguments: ["llama", "gemma3", "deepseekv3"])
    func splitDecodeMatchesUnsplit(arch: String) throws {
        let model = try loadModel(arch, "f32")
        var seed: UInt64 = 7
        let prompt: [Int32] = (0..<700).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int32(seed >> 33) % 500 + 5
        }
        var results: [[Float]] = []
        for threads in [1, 2] {   // 1 thread never splits; 2 threads split decode over ≥ 512 positions
            let state = InferenceState(model: model, contextLength: 1024, maxBatch: 512, threads: threads)
            _ = try model.forward(prompt, startPosition: 0, state: state, logits: .none)
            var out: [Float] = []
            for step in 0..<3 {
                out += Array(try model.forward([Int32(100 + step)], startPosition: state.position, state: state, logits: .last))
            }
            results.append(out)
        }
        let diff = zip(results[0], results[1]).map { abs($0 - $1) }.max() ?? 0
        #expect(diff < 1e-3, "\(arch): split-K decode differs by \(diff)")
    }
}

/// F16 KV pages (half the memory): logits within rounding of the F32 cache, same argmax, on every
/// fixture architecture.
@Suite struct F16KVTests {
    @Test(arguments: TinyFixtureTests.architectures)
    func f16CacheStaysCloseToF32(arch: String) throws {
        let golden = try loadGolden(arch)
        let model = try loadModel(arch, "f32")
        let state = InferenceState(model: model, contextLength: 64, maxBatch: 5, threads: 2, kvType: .f16)
        #expect(state.cache.pool.shape.type == .f16)
        let logits = try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all)
        let diff = maxAbsDiff(logits, golden.logits)
        #expect(diff <= 2e-2, "\(arch) f16 KV max |Δlogit| = \(diff)")
        for r in 0..<golden.token_ids.count {
            #expect(argmax(logits, row: r, vocab: model.vocabularySize) == golden.argmax[r], "\(arch) argmax at \(r)")
        }
    }
}

/// Long contexts (600 positions: the prompt kernel's many key blocks, split-K decode): the decode step's
/// logits equal the last row of the same tokens prefilled in one batch (F32 weights, so no activation
/// quantization can amplify rounding differences).
@Suite struct LongContextTests {
    @Test(arguments: [("llama", KVType.f32), ("qwen3", .f32), ("gemma3", .f32), ("deepseekv3", .f32), ("llama4", .f32),
                      ("qwen3", .f16), ("qwen3", .q8_0)])
    func decodeMatchesPrefillAtLength(arch: String, kvType: KVType) throws {
        let model = try loadModel(arch, "f32")
        var seed: UInt64 = 11
        let tokens: [Int32] = (0..<600).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int32(seed >> 33) % 500 + 5
        }
        // Q8_0 rows: the decode kernel widens chunks of 256 rows and merges them; the prompt kernel widens
        // blocks of 16. Both read the same stored rows.
        let a = InferenceState(model: model, contextLength: 1024, maxBatch: 512, threads: 2, kvType: kvType)
        _ = try model.forward(Array(tokens.dropLast()), startPosition: 0, state: a, logits: .none)
        let decoded = Array(try model.forward([tokens.last!], startPosition: 599, state: a, logits: .last))
        let b = InferenceState(model: model, contextLength: 1024, maxBatch: 512, threads: 2, kvType: kvType)
        let prefilled = Array(try model.forward(tokens, startPosition: 0, state: b, logits: .last))
        let diff = zip(decoded, prefilled).map { abs($0 - $1) }.max()!
        #expect(diff < 1e-3, "\(arch) \(kvType): decode vs prefill at 600 positions |Δ| = \(diff)")
    }
}
