// Routed experts streamed through a few RAM slots give the same logits, bit for bit, as all experts
// mapped: with one slot (every expert in its own wave, evicted at once) and with a few.

import Foundation
import Testing
import GGUF
import KVCache
import Kernels
import Models

@Suite struct ExpertCacheTests {
    @Test(arguments: ["qwen3moe", "glm4moe", "llama4", "deepseekv3"])
    func streamedExpertsMatchMapped(arch: String) throws {
        let golden = try loadGolden(arch)
        let reference = try loadModel(arch, "f32")
        let vocab = reference.vocabularySize
        func run(_ model: TransformerModel) throws -> [Float] {
            let state = InferenceState(model: model, contextLength: 64, maxBatch: 64, threads: 2)
            var out = Array(try model.forward(golden.token_ids, startPosition: 0, state: state, logits: .all))
            for step in 0..<4 {
                let next = Int32(golden.greedy.next_ids[step])
                out += Array(try model.forward([next], startPosition: state.position, state: state, logits: .last))
            }
            return out
        }
        let expected = try run(reference)
        for (slots, mode) in [(1, ExpertReadMode.direct), (3, .direct), (3, .buffered)] {
            let model = try loadModel(arch, "f32")
            guard let f = model.moeBlocks.first?.weights else {
                Issue.record("\(arch) has no MoE layer"); return
            }
            let bytes = ExpertCache.expertBytes([f.gate[0], f.up[0], f.down[0]])
            model.expertCache = try ExpertCache(path: model.gguf.path, fileBase: model.gguf.base, expertBytes: bytes, slots: slots, readMode: mode)
            model.expertCache!.prefetchAlways = slots > 1   // a guess may replace any slot not in use
            let got = try run(model)
            #expect(got == expected, "\(arch), \(slots) slots, \(mode)")
            let stats = model.expertCache!.stats
            // Every read is a demand miss or a prefetch of the next layer's predicted experts.
            #expect(stats.misses > 0 && stats.bytesRead == (stats.misses + stats.prefetches) * bytes)
            #expect(stats.bytesFromStorage >= stats.bytesRead)
            if slots == 3 { #expect(stats.prefetches > 0, "\(arch): the next layer's experts are prefetched") }
            #expect(got.count == (golden.token_ids.count + 4) * vocab)
        }
    }
}

/// Reads land where the views say, whatever the matrices' alignment in the file: one straddling a 4 KiB
/// boundary, one ending at the end of the file (O_DIRECT's aligned range reaches past it).
@Suite struct ExpertCacheReadTests {
    @Test(arguments: ExpertReadMode.allCases)
    func viewsHoldTheFileBytes(mode: ExpertReadMode) throws {
        let size = 3 * 4096 + 1000
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 8) }
        let path = FileManager.default.currentDirectoryPath + "/.build/expert-cache-read-\(mode).bin"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let map = try #require(mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0))
        defer { munmap(map, size) }
        // F32 matrices of 3 × 5 (60 bytes) at 4090 (straddles 4096), 100, and the file's last 60 bytes.
        let offsets = [4090, 100, size - 60]
        let parts = offsets.map { WeightMatrix(type: .f32, rows: 3, cols: 5, data: UnsafeRawPointer(map + $0)) }
        let cache = try ExpertCache(path: path, fileBase: UnsafeRawPointer(map), expertBytes: 180, slots: 2, readMode: mode)
        for round in 0..<3 {   // the second expert evicts nothing; the third reuses a slot
            let got = cache.request(layer: 0, experts: [(round, parts)])
            cache.waitAll(got.map(\.slot))
            for (view, offset) in zip(got[0].views, offsets) {
                #expect(Array(UnsafeRawBufferPointer(start: view.data, count: 60)) == Array(bytes[offset..<(offset + 60)]), "\(mode) at \(offset)")
            }
            cache.unpinAll()
        }
        let stats = cache.stats
        #expect(stats.misses == 3 && stats.bytesRead == 3 * 180)
        #expect(mode == .buffered ? stats.bytesFromStorage == 3 * 180 : stats.bytesFromStorage >= 3 * 3 * 4096)
    }
}

/// The frontier architectures' routed experts (MXFP4 ones included) streamed through two slots give the
/// logits of the fully mapped model, bit for bit.
@Test(arguments: ["deepseek4.mxfp4.gguf", "gemma4.f32.gguf", "qwen35moe.f32.gguf", "glm_dsa.f32.gguf"])
func frontierStreamedExpertsMatchMapped(file: String) throws {
    func load() throws -> TransformerModel {
        try ModelRegistry.load(try GGUFFile(path: frontierDirectory.appendingPathComponent(file).path))
    }
    func run(_ model: TransformerModel) throws -> [Float] {
        let tokens = (0..<40).map { Int32(3 + ($0 * 37) % 500) }
        let state = InferenceState(model: model, contextLength: 64, maxBatch: 64, threads: 2)
        var out = Array(try model.forward(tokens, startPosition: 0, state: state, logits: .all))
        out += Array(try model.forward([7], startPosition: state.position, state: state, logits: .last))
        return out
    }
    let expected = try run(try load())
    let model = try load()
    let f = try #require(model.moeBlocks.first?.weights)
    let bytes = ExpertCache.expertBytes([f.gate[0], f.up[0], f.down[0]])
    model.expertCache = try ExpertCache(path: model.gguf.path, fileBase: model.gguf.base, expertBytes: bytes, slots: 2, readMode: .buffered)
    #expect(try run(model) == expected, "\(file)")
    #expect(model.expertCache!.stats.misses > 0)
}
