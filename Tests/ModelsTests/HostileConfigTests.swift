// Model configs from hostile metadata (found by the GGUF fuzz target, Fuzz/): refused with an error
// before anything is sized from them.

import Foundation
import Testing
import GGUF
import Models

@Suite("Hostile model configs")
struct HostileConfigTests {
    /// block_count 2^40 in a few hundred bytes used to size per-layer tables of 2^40 entries (out of memory).
    @Test("a block count beyond the tensor count is refused")
    func hugeBlockCount() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("llama.block_count", .uint64(1 << 40))
        w.set("llama.embedding_length", .uint32(8))
        w.set("llama.attention.head_count", .uint32(2))
        try w.addTensor(name: "token_embd.weight", dims: [8, 4], floats: [Float](repeating: 0, count: 32))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ds-hostile-\(UUID().uuidString.prefix(8)).gguf").path
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let gguf = try GGUFFile(path: path)
        #expect(throws: ModelError.self) { try ModelConfig(gguf: gguf, architecture: "llama") }
        #expect(throws: ModelError.self) { try ModelRegistry.load(gguf) }
    }
}
