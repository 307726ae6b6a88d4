// Perplexity on Pride and Prejudice (c = 512, 20 chunks) within 1% of llama.cpp's figures on the same
// files (llama-perplexity -c 512 --chunks 20 -t 2): SmolLM2-135M-Instruct Q4_1 21.08,
// Gemma 3 270M Q4_K_M 23.19.

import Foundation
import Testing
import Engine

@Suite(.serialized) struct PerplexityTests {
    static let text = try! String(contentsOf: engineFixtures.appendingPathComponent("pride-and-prejudice.txt"), encoding: .utf8)

    func check(_ name: String, expected: Double) throws {
        let loaded = try RealModels.load(name)
        let session = Session(loaded, contextLength: 512, threads: 2)
        let r = try Perplexity.run(session: session, text: Self.text, contextSize: 512, maxChunks: 20)
        print("perplexity \(name): \(r.perplexity) ± \(r.uncertainty) (llama.cpp \(expected)), \(r.tokensScored) tokens, \(r.seconds) s")
        #expect(r.chunks.count == 20)
        #expect(abs(r.perplexity - expected) / expected < 0.01, "\(name): PPL \(r.perplexity) vs llama.cpp \(expected)")
    }

    @Test(.enabled(if: RealModels.available("smollm2"))) func smollm2() throws { try check("smollm2", expected: 21.08) }
    @Test(.enabled(if: RealModels.available("gemma3-270m"))) func gemma3() throws { try check("gemma3-270m", expected: 23.19) }
}
