// Layer groups whose attention only looks back a window: pages out of the window are dropped (kept in
// the prefix cache while memory allows), rollback takes them back from there or empties the sequence,
// and a cached prefix needs only the pages the window reaches.

import Testing
import KVCache

@Suite struct KVWindowTests {
    /// Layer 0 sees the last 6 positions, layer 1 all of them; pages of 4 positions.
    let shape = KVShape(layers: 2, kRowFloats: 3, vRowFloats: 2, retention: [.window(6), .all])

    /// Writes in batches of 8 positions (a batch's pages are all allocated before its commit drops any).
    func write(_ seq: KVSequence, _ tokens: [Int32], start: Int) throws {
        for s in stride(from: 0, to: tokens.count, by: 8) where tokens.count > 8 {
            try write(seq, Array(tokens[s..<min(s + 8, tokens.count)]), start: start + s)
        }
        guard tokens.count <= 8 else { return }
        try seq.prepareWrite(start: start, count: tokens.count)
        for (i, t) in tokens.enumerated() {
            for l in 0..<2 {
                seq.storeK(l, start + i, [Float](repeating: Float(t) * 10 + Float(l), count: 3))
                seq.storeV(l, start + i, [Float](repeating: -Float(t) * 10 - Float(l), count: 2))
            }
        }
        tokens.withUnsafeBufferPointer { seq.commit($0, start: start) }
    }

    /// Rows of `layer` at `positions` hold what `write` stored for tokens[position].
    func rowsMatch(_ seq: KVSequence, layer: Int, _ positions: Range<Int>, _ tokens: [Int32]) -> Bool {
        positions.allSatisfy { p in
            var k = [Float](repeating: 0, count: 3)
            seq.loadK(layer, p, count: 3, into: &k)
            let v = seq.vRow(layer, p).assumingMemoryBound(to: Float.self)[1]
            return k == [Float](repeating: Float(tokens[p]) * 10 + Float(layer), count: 3) && v == -Float(tokens[p]) * 10 - Float(layer)
        }
    }

    @Test func groupsFollowTheRetentionOfTheirLayers() {
        let groups = KVLayerGroups(shape)
        #expect(groups.layersPerGroup == 1 && groups.retention == [.window(6), .all])
        // Gemma 3 270M's pattern: 15 sliding + 3 global layers → groups of 3 layers.
        let gemma = KVShape(layers: 18, kRowFloats: 256, vRowFloats: 256,
                            retention: (0..<18).map { ($0 + 1) % 6 == 0 ? .all : .window(512) })
        let g = KVLayerGroups(gemma)
        #expect(g.layersPerGroup == 3 && g.count == 6 && g.retention.filter { $0 == .all }.count == 1)
        #expect(g.group[5] == g.group[11] && g.group[11] == g.group[17] && g.slot[17] == 2)
        // One retention: one group of every layer, the layout of a model without windows.
        #expect(KVLayerGroups(KVShape(layers: 4, kRowFloats: 8, vRowFloats: 8)).layersPerGroup == 4)
        // The budget counts a window's pages, not the context's.
        #expect(KVPagePool.pagesNeeded(gemma, positions: 32768, batch: 512, pageTokens: 32) < 2 * 32768 / 32)
    }

    @Test func windowedGroupsDropPagesOutsideTheirWindow() throws {
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 64)
        let seq = KVSequence(pool: pool, maxPositions: 64)
        let tokens = (0..<40).map { Int32($0 + 100) }
        for start in stride(from: 0, to: 40, by: 5) {
            try write(seq, Array(tokens[start..<(start + 5)]), start: start)
            let count = start + 5, needed = max(0, count - 5)   // the window of a query at `count`
            let first = seq.firstRetainedPosition(layer: 0)
            #expect(first <= needed && first >= needed - 4 - 3, "count \(count): first kept row \(first)")
            #expect(seq.firstRetainedPosition(layer: 1) == 0)
            #expect(rowsMatch(seq, layer: 0, first..<count, tokens) && rowsMatch(seq, layer: 1, 0..<count, tokens))
        }
        // 10 pages for layer 1, the window plus one page of slack for layer 0; dropped pages stay cached.
        let windowPages = (40 - seq.firstRetainedPosition(layer: 0)) / 4
        #expect(windowPages <= 4 && seq.heldPages == 10 + windowPages)
        #expect(pool.cachedPages == 10 - windowPages)
    }

    @Test func rollbackTakesDroppedPagesBackFromTheCacheOrEmptiesTheSequence() throws {
        let tokens = (0..<40).map { Int32($0 + 100) }
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 24)
        let a = KVSequence(pool: pool, maxPositions: 64)
        try write(a, tokens, start: 0)
        #expect(a.firstRetainedPosition(layer: 0) > 14)
        // Back to 20: layer 0 needs rows 15..<20 again; its dropped pages are still cached.
        #expect(a.truncate(to: 20) == 20)
        #expect(a.firstRetainedPosition(layer: 0) <= 15)
        #expect(rowsMatch(a, layer: 0, 15..<20, tokens) && rowsMatch(a, layer: 1, 0..<20, tokens))
        try write(a, Array(tokens[20..<40]), start: 20)

        // Another sequence takes (nearly) every free and cached page: the dropped pages are evicted,
        // least recently dropped first.
        let b = KVSequence(pool: pool, maxPositions: 64)
        try b.prepareWrite(start: 0, count: (pool.freePages + pool.cachedPages) / 2 * 4)
        #expect(pool.cachedPages <= 1)
        #expect(throws: KVCacheError.windowDropped(position: 20, kept: 0)) { try a.prepareWrite(start: 20, count: 1) }
        #expect(a.count == 0 && a.heldPages == 0)
        // A short rollback (inside the slack page) never needs the cache.
        b.truncate(to: 0)
        try write(a, tokens, start: 0)
        #expect(a.truncate(to: 38) == 38 && a.truncate(to: 36) == 36)
        #expect(rowsMatch(a, layer: 0, 31..<36, tokens))
    }

    @Test func cachedPrefixNeedsOnlyTheWindowsPages() throws {
        let tokens = (0..<40).map { Int32($0 + 100) }
        let pool = KVPagePool(shape: shape, pageTokens: 4, capacity: 20)
        do {
            let a = KVSequence(pool: pool, maxPositions: 64)
            try write(a, tokens, start: 0)
            // A short-lived sequence evicts the three least recently cached pages: layer 0's first ones.
            let c = KVSequence(pool: pool, maxPositions: 64)
            try c.prepareWrite(start: 0, count: (pool.freePages + 3) * 4 / 2)
        }
        let b = KVSequence(pool: pool, maxPositions: 64)
        #expect(b.attachCachedPrefix(of: tokens + [7], limit: 40) == 40)
        #expect(rowsMatch(b, layer: 1, 0..<40, tokens) && rowsMatch(b, layer: 0, 35..<40, tokens))
        #expect(b.firstRetainedPosition(layer: 0) <= 35 && b.firstRetainedPosition(layer: 0) > 0)
        try write(b, [7], start: 40)
        #expect(rowsMatch(b, layer: 0, 36..<41, tokens + [7]))
    }
}
