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
    static func compare(_ loaded: LoadedModel, prompt: [Int32], tokens n: Int, draftMax: Int = 8,
                        speculation: SpeculationOptions? = nil) throws -> (plain: GenerationResult, speculative: GenerationResult) {
        let plain = try Session(loaded, contextLength: 1024, threads: 2, batch: 32).generate(prompt: prompt, options: options(n, speculation: nil)) { _ in }
        let speculative = try Session(loaded, contextLength: 1024, threads: 2, batch: 32)
            .generate(prompt: prompt, options: options(n, speculation: speculation ?? SpeculationOptions(draftMax: draftMax))) { _ in }
        return (plain, speculative)
    }

    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: DiskTierRecoveryTests.fixture).deletingLastPathComponent().appendingPathComponent(name).path
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
        let loaded = try LoadedModel(path: Self.fixture("\(architecture).f32.gguf"))
        // Draft models: the same architecture's F16 file (close to the target: most drafts accepted) and
        // the qwen3 fixture (a different random model: most rejected), where its vocabulary fits.
        let draftModels: [LoadedModel] = try [LoadedModel(path: Self.fixture("\(architecture).f16.gguf")), LoadedModel(path: Self.fixture("qwen3.f32.gguf"))]
            .filter { SpeculationOptions(mode: .draft, draftModel: $0).problem(for: loaded) == nil }
        #expect(!draftModels.isEmpty)
        let prompt: [Int32] = [1, 5, 9, 5, 9, 5, 9, 12, 5, 9]
        let runs = [1, 4, 16].map { ("ngram, drafts of up to \($0)", SpeculationOptions(draftMax: $0)) }
            + draftModels.map { ("draft model \($0.name)", SpeculationOptions(mode: .draft, draftMax: 6, draftModel: $0)) }
        for (name, speculation) in runs {
            let (plain, speculative) = try Self.compare(loaded, prompt: prompt, tokens: 40, speculation: speculation)
            #expect(speculative.tokens == plain.tokens, "\(architecture), \(name)")
            let stats = try #require(speculative.speculation)
            if loaded.model.body.exactDecodeRows {
                #expect(stats.passes > 0, "\(architecture), \(name): drafts were made")
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

    /// Greedy answers (token ids) of an engine of 2 sequences to `prompts`, and the drafted tokens it
    /// accepted.
    static func engineAnswers(_ loaded: LoadedModel, prompts: [[Int32]], tokens: Int, speculation: SpeculationOptions?) async throws
        -> (ids: [[Int32]], accepted: Int, drafted: Int) {
        let engine = BatchEngine(loaded, parallel: 2, contextLength: 256, maxBatch: 32, prefillChunk: 16, threads: 1, speculation: speculation)
        defer { engine.shutdown() }
        let handles = try prompts.map { try engine.submit(EngineRequest(prompt: $0, options: Self.options(tokens, speculation: nil), topLogprobs: 0)) }
        var results: [[Int32]] = [], accepted = 0, drafted = 0
        for handle in handles {
            var ids: [Int32] = []
            for await event in handle.events {
                if case .text(_, let tokens) = event { ids += tokens.map(\.token) }
                if case .finished(let f) = event { accepted += f.acceptedTokens; drafted += f.draftedTokens }
                if case .failed(let m) = event { Issue.record("\(m)") }
            }
            results.append(ids)
        }
        return (results, accepted, drafted)
    }

    static let enginePrompts: [[Int32]] = [[1, 5, 9, 5, 9, 5, 9], [1, 7, 3, 22, 40], [1, 9, 9, 9, 9, 9], [1, 100, 200, 300], [1, 5, 9, 5, 9]]

    /// The batch engine with a draft model (serve --spec draft): each request drafts from its own draft
    /// session, and the answers are the engine's without speculation; draft sessions are reused.
    @Test func batchEngineWithADraftModelAnswersAsWithout() async throws {
        let loaded = try LoadedModel(path: Self.fixture("llama.f32.gguf"))
        let draftModel = try LoadedModel(path: Self.fixture("llama.f16.gguf"))
        let plain = try await Self.engineAnswers(loaded, prompts: Self.enginePrompts, tokens: 30, speculation: nil)
        let speculative = try await Self.engineAnswers(loaded, prompts: Self.enginePrompts, tokens: 30,
                                                       speculation: SpeculationOptions(mode: .draft, draftMax: 6, draftModel: draftModel))
        #expect(plain.ids.allSatisfy { $0.count == 30 })
        #expect(plain.ids == speculative.ids)
        #expect(speculative.accepted > 50, "the F16 draft of the same weights is mostly accepted")
    }

    /// Models with side state (Qwen3.5's recurrent state, DeepSeek V4's compressed cache): rejected
    /// drafts are undone through the side-state mark and the kept rows evaluated again, so the output
    /// is unchanged, in a session and in the batch engine. N-gram drafts of the models' repetitive
    /// output are accepted; a random draft model's (the llama fixture's) are rejected.
    @Test func sideStateModelsKeepTheirGreedyOutput() async throws {
        var ngram = SpeculationOptions(draftMax: 4)
        ngram.ngramMin = 1
        let randomDrafts = SpeculationOptions(mode: .draft, draftMax: 4, draftModel: try LoadedModel(path: Self.fixture("llama.f32.gguf")))
        let prompt: [Int32] = [1, 5, 9, 5, 9, 5, 9, 12, 5, 9, 40, 41, 42, 5, 9]
        for (tag, write) in [("qwen35moe", SyntheticQwen35MoETests.writeTiny), ("deepseek4", SyntheticDeepSeek4Tests.writeTiny)] {
            let dir = try syntheticTempDirectory("spec-" + tag)
            defer { try? FileManager.default.removeItem(at: dir) }
            let loaded = try LoadedModel(path: try write(dir).0)
            #expect(randomDrafts.problem(for: loaded) == nil)
            var accepted = 0, rejected = 0
            for spec in [ngram, randomDrafts] {
                let name = "\(tag), \(spec.mode.rawValue)"
                let (plain, speculative) = try Self.compare(loaded, prompt: prompt, tokens: 48, speculation: spec)
                #expect(speculative.tokens == plain.tokens, "\(name): speculative output differs")
                let stats = try #require(speculative.speculation)
                accepted += stats.accepted
                rejected += stats.drafted - stats.accepted
                let enginePlain = try await Self.engineAnswers(loaded, prompts: Self.enginePrompts, tokens: 24, speculation: nil)
                let engineSpeculative = try await Self.engineAnswers(loaded, prompts: Self.enginePrompts, tokens: 24, speculation: spec)
                #expect(enginePlain.ids == engineSpeculative.ids, "\(name): the speculative engine answered differently")
                accepted += engineSpeculative.accepted
                rejected += engineSpeculative.drafted - engineSpeculative.accepted
            }
            #expect(accepted > 0 && rejected > 0, "\(tag): \(accepted) drafted tokens accepted, \(rejected) rejected")
        }
    }

    /// `dwarfstar bench --spec`: a row per kind of prompt, in the workload's order, with rates, drafts
    /// and the check that speculative outputs equal the plain ones; workload files parsed strictly.
    @Test func speculationBenchmarkReportsEachKind() throws {
        let loaded = try LoadedModel(path: Self.fixture("llama.f32.gguf"))
        let runtime = try RuntimeOptions(RuntimeSettings(threads: 1, contextLength: 512), for: loaded)
        var spec = SpeculationOptions(draftMax: 4)
        spec.ngramMin = 1
        let workload = [SpeculationWorkload(kind: "copy", prompt: "a b a b a b a b"), SpeculationWorkload(kind: "free", prompt: "once"),
                        SpeculationWorkload(kind: "copy", prompt: "x y z x y z x y z")]
        let rows = try SpeculationBenchmark.run(loaded, workload: workload, speculation: spec, options: runtime, maxTokens: 24, repetitions: 2)
        #expect(rows.map(\.kind) == ["copy", "free"] && rows.map(\.prompts) == [2, 1])
        #expect(rows.allSatisfy { $0.identical && $0.plainTokensPerSecond > 0 && $0.speculativeTokensPerSecond > 0 && $0.ratio > 0 })
        #expect(rows[0].drafted > 0)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("workload-\(UUID()).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("{\"kind\": \"code\", \"prompt\": \"hi\"}\n\n{\"kind\": \"chat\", \"prompt\": \"yo\"}\n".utf8).write(to: file)
        #expect(try SpeculationWorkload.load(file.path) == [SpeculationWorkload(kind: "code", prompt: "hi"), SpeculationWorkload(kind: "chat", prompt: "yo")])
        try Data("{\"kind\": \"code\"}\n".utf8).write(to: file)
        #expect(throws: SpeculationBenchmarkError.self) { try SpeculationWorkload.load(file.path) }
    }

    /// A draft model whose vocabulary differs is refused with a message that says how.
    @Test func incompatibleDraftModelsAreRefusedClearly() throws {
        let llama = try LoadedModel(path: Self.fixture("llama.f32.gguf")), glm = try LoadedModel(path: Self.fixture("glm4moe.f32.gguf"))
        let options = SpeculationOptions(mode: .draft, draftModel: glm)
        let problem = try #require(options.problem(for: llama))
        #expect(problem.contains("vocabulary"), "\(problem)")
        #expect(throws: SpeculationError.self) {
            try Session(llama, contextLength: 64, threads: 1).generate(prompt: [1, 5], options: Self.options(4, speculation: options)) { _ in }
        }
        #expect(SpeculationOptions(mode: .draft).problem(for: llama) != nil, "draft mode without a model")
    }

    /// Sampling requests speculate too, in a session and in the batch engine (their distribution is
    /// checked by SpeculativeSamplingTests).
    @Test func samplingRequestsSpeculate() async throws {
        let loaded = try LoadedModel(path: DiskTierRecoveryTests.fixture)
        var spec = SpeculationOptions(draftMax: 4)
        spec.ngramMin = 1
        var o = Self.options(48, speculation: spec)
        o.sampler = SpeculativeSamplingTests.parameters(seed: 1, topK: 4, temperature: 0.6)
        let r = try Session(loaded, contextLength: 256, threads: 1).generate(prompt: [1, 5, 9, 5, 9, 5, 9], options: o) { _ in }
        #expect(r.speculation?.disabledReason == nil)
        #expect((r.speculation?.passes ?? 0) > 0)
        let engine = BatchEngine(loaded, parallel: 2, contextLength: 256, maxBatch: 32, prefillChunk: 16, threads: 1, speculation: spec)
        defer { engine.shutdown() }
        var request = o
        request.speculation = nil
        let handle = try engine.submit(EngineRequest(prompt: [1, 5, 9, 5, 9, 5, 9], options: request))
        var finish: EngineFinish?
        for await event in handle.events {
            if case .finished(let f) = event { finish = f }
            if case .failed(let m) = event { Issue.record("\(m)") }
        }
        #expect(finish?.completionTokens == 48)
        #expect((finish?.draftedTokens ?? 0) > 0)
    }

    @Test func drafterFollowsTheLatestLongestMatch() {
        let d = NGramDrafter(ngramMin: 2, ngramMax: 3)
        //                 0  1  2  3  4  5  6  7  8  9 10
        let history: [Int32] = [7, 1, 2, 3, 9, 1, 2, 4, 8, 1, 2]
        // "1 2" occurs at 1 and 5: the latest (5) is followed by 4, 8.
        #expect(d.tokens(after: history, limit: 3) == [4, 8, 1])
        #expect(d.tokens(after: history, limit: 1) == [4])
        #expect(d.tokens(after: [1, 2, 3], limit: 4) == [])   // no earlier occurrence
        #expect(d.tokens(after: [5], limit: 4) == [])
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
        // A drafter as slow as the model (a draft model of the same size): even drafts always accepted
        // cannot pay, so after one measured pass it stops, probes included.
        var slow = DraftLengthTuner(draftMax: 8)
        #expect(slow.length() == 0, "the first step measures a lone step")
        slow.recordStep(seconds: 0.01)
        let k = slow.length()
        #expect(k > 0)
        slow.recordDraft(seconds: 0.01 * Double(k), tokens: k)
        slow.recordPass(rows: k + 1, seconds: 0.012, drafted: k, accepted: k)
        #expect((0..<100).allSatisfy { _ in slow.length() == 0 })
    }
}
