// Speculative decoding: greedy output token for token the plain decoder's, on real models and on the
// tiny fixtures; drafts accepted where the text repeats; a clear reason where it cannot run; the
// prompt-lookup drafter and the draft-length tuner on their own.

import Foundation
import Testing
import Sampling
import Engine

@Suite(.serialized) struct SpeculationTests {
    static let copyPrompt = """
        Copy the following text exactly, word for word:

        The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step. \
        All that glitters is not gold. Actions speak louder than words. Where there is a will, there is a way. \
        The early bird catches the worm. Practice makes perfect. Knowledge is power.
        """

    static func options(_ n: Int, speculation: SpeculationOptions?) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = n
        o.sampler = .greedy
        o.ignoreEOS = true
        o.speculation = speculation
        return o
    }

    /// Plain and speculative greedy generation from fresh sessions: the same tokens.
    static func compare(_ loaded: LoadedModel, prompt: [Int32], tokens n: Int, draftMax: Int = 8) throws
        -> (plain: GenerationResult, speculative: GenerationResult) {
        let plain = try Session(loaded, contextLength: 1024, threads: 2, batch: 32).generate(prompt: prompt, options: options(n, speculation: nil)) { _ in }
        let speculative = try Session(loaded, contextLength: 1024, threads: 2, batch: 32)
            .generate(prompt: prompt, options: options(n, speculation: SpeculationOptions(draftMax: draftMax))) { _ in }
        return (plain, speculative)
    }

    @Test(.enabled(if: RealModels.available("smollm2"), "needs the real model smollm2"),
          arguments: ["smollm2", "gemma3-270m"])
    func greedyOutputIsUnchangedOnRealModels(model: String) throws {
        try #require(RealModels.available(model), "needs the real model \(model)")
        let loaded = try RealModels.load(model)
        let prompt = try PromptBuilder.chatPrompt(loaded, messages: [ChatMessage(role: "user", content: Self.copyPrompt)])
        let (plain, speculative) = try Self.compare(loaded, prompt: prompt, tokens: 96)
        #expect(speculative.tokens == plain.tokens, "\(model): speculative output differs from plain decoding")
        let stats = try #require(speculative.speculation)
        #expect(stats.disabledReason == nil)
        #expect(stats.passes > 0 && stats.accepted > 0, "\(model): \(stats.summary)")
    }

    /// Every fixture architecture, draft lengths 1, 4 and 16: drafts mostly rejected (tiny random
    /// models) leave the output unchanged; an architecture whose decode rows are not exact in a batch
    /// yet decodes plainly and says why.
    @Test(arguments: ["llama", "qwen2", "qwen3", "gemma3", "qwen3moe", "glm4moe", "llama4", "deepseekv3"])
    func everyFixtureArchitectureKeepsItsGreedyOutput(architecture: String) throws {
        let path = URL(fileURLWithPath: DiskTierRecoveryTests.fixture).deletingLastPathComponent()
            .appendingPathComponent("\(architecture).f32.gguf").path
        let loaded = try LoadedModel(path: path)
        let prompt: [Int32] = [1, 5, 9, 5, 9, 5, 9, 12, 5, 9]
        for draftMax in [1, 4, 16] {
            let (plain, speculative) = try Self.compare(loaded, prompt: prompt, tokens: 40, draftMax: draftMax)
            #expect(speculative.tokens == plain.tokens, "\(architecture), drafts of up to \(draftMax)")
            let stats = try #require(speculative.speculation)
            if loaded.model.body.exactDecodeRows {
                #expect(stats.passes > 0, "\(architecture): the repeated n-grams give drafts")
            } else {
                #expect(stats.disabledReason != nil && stats.passes == 0, "\(architecture)")
            }
        }
    }

    /// The batch engine (serve --spec): concurrent greedy requests, some copying and some not, answer
    /// exactly as on an engine without speculation, and the copying ones have drafts accepted.
    @Test(.enabled(if: RealModels.available("smollm2"), "needs the real model smollm2"))
    func batchEngineAnswersAsWithoutSpeculation() async throws {
        let loaded = try RealModels.load("smollm2")
        let prompts = try [Self.copyPrompt, "Write a short poem about rain.", Self.copyPrompt + " Time and tide wait for no man.",
                           "List three colours."].map { try PromptBuilder.chatPrompt(loaded, messages: [ChatMessage(role: "user", content: $0)]) }
        func answers(_ speculation: SpeculationOptions?) async throws -> [(text: String, finish: EngineFinish?)] {
            let engine = BatchEngine(loaded, parallel: 4, contextLength: 1024, maxBatch: 128, prefillChunk: 64, threads: 2,
                                     speculation: speculation)
            defer { engine.shutdown() }
            let handles = try prompts.map { try engine.submit(EngineRequest(prompt: $0, options: Self.options(80, speculation: nil))) }
            var results: [(text: String, finish: EngineFinish?)] = []
            for handle in handles {
                var text = "", finish: EngineFinish?
                for await event in handle.events {
                    switch event {
                    case .text(let t, _): text += t
                    case .finished(let f): finish = f
                    case .failed(let m): Issue.record("\(m)")
                    default: break
                    }
                }
                results.append((text, finish))
            }
            return results
        }
        let plain = try await answers(nil), speculative = try await answers(SpeculationOptions(draftMax: 8))
        for (i, (p, s)) in zip(plain, speculative).enumerated() {
            #expect(p.text == s.text, "request \(i): the speculative engine answered differently")
            #expect(p.finish?.draftedTokens == 0)
        }
        #expect((speculative[0].finish?.acceptedTokens ?? 0) > 0 && (speculative[2].finish?.acceptedTokens ?? 0) > 0,
                "the copying requests had drafts accepted")
    }

    @Test func temperatureTurnsSpeculationOffWithAReason() throws {
        let loaded = try LoadedModel(path: DiskTierRecoveryTests.fixture)
        var o = Self.options(8, speculation: SpeculationOptions())
        o.sampler.temperature = 0.7
        o.sampler.seed = 1
        let r = try Session(loaded, contextLength: 256, threads: 1).generate(prompt: [1, 5, 9], options: o) { _ in }
        #expect(r.speculation?.disabledReason?.contains("--temp 0") == true)
        #expect(r.speculation?.passes == 0)
    }

    @Test func drafterFollowsTheLatestLongestMatch() {
        let d = NGramDrafter(ngramMin: 2, ngramMax: 3)
        //                 0  1  2  3  4  5  6  7  8  9 10
        let history: [Int32] = [7, 1, 2, 3, 9, 1, 2, 4, 8, 1, 2]
        // "1 2" occurs at 1 and 5: the latest (5) is followed by 4, 8.
        #expect(d.draft(after: history, limit: 3) == [4, 8, 1])
        #expect(d.draft(after: history, limit: 1) == [4])
        #expect(d.draft(after: [1, 2, 3], limit: 4) == [])   // no earlier occurrence
        #expect(d.draft(after: [5], limit: 4) == [])
    }

    @Test func tunerStopsDraftingWhenPassesDoNotPay() {
        var t = DraftLengthTuner(draftMax: 8)
        t.recordStep(seconds: 0.01)
        // Every pass costs (rows) lone steps and nothing is accepted: no length pays.
        for _ in 0..<30 {
            let k = max(1, t.length())
            t.recordPass(rows: k + 1, seconds: 0.01 * Double(k + 1), drafted: k, accepted: 0)
        }
        #expect(t.length() == 0)
        // Cheap passes with everything accepted: the longest draft pays.
        var good = DraftLengthTuner(draftMax: 8)
        good.recordStep(seconds: 0.01)
        for rows in 2...9 { good.recordPass(rows: rows, seconds: 0.01 * (1 + 0.1 * Double(rows - 1)), drafted: rows - 1, accepted: rows - 1) }
        #expect(good.length() == 8)
    }
}
