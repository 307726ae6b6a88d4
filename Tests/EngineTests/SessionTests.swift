// Sessions on the real default model: greedy generation is deterministic, the KV cache prefix is
// reused across turns, stop strings cut the text, context overflow is an error, not a crash.

import Foundation
import Testing
import Engine
import Models
import Sampling

@Suite(.serialized, .enabled(if: RealModels.available("smollm2")))
struct SessionTests {
    @Test func greedyAnswerIsSensibleAndRepeatable() throws {
        let loaded = try RealModels.load("smollm2")
        let session = Session(loaded, contextLength: 512, threads: 2)
        let prompt = try PromptBuilder.chatPrompt(loaded, messages: [ChatMessage(role: "user", content: "Write one sentence about the sea.")])
        var options = GenerationOptions()
        options.maxTokens = 24
        options.sampler = .greedy
        let a = try session.generate(prompt: prompt, options: options) { _ in }
        #expect(a.text.lowercased().contains("sea"), "answer: \(a.text)")
        // A fresh session (as a new process would have) gives the same tokens. (After reset() the same
        // session reuses the prompt's cached pages and evaluates only the rest, in a smaller batch whose
        // kernels round differently: the text may then differ in the last bits, as with llama.cpp's
        // prompt cache.)
        let b = try Session(loaded, contextLength: 512, threads: 2).generate(prompt: prompt, options: options) { _ in }
        #expect(a.tokens == b.tokens)
        session.reset()
        let c = try session.generate(prompt: prompt, options: options) { _ in }
        #expect(c.promptEvaluated < c.promptTokens, "the prompt's full pages come from the prefix cache")
        #expect(c.text.lowercased().contains("sea"), "answer: \(c.text)")
    }

    @Test func seededSamplingIsRepeatable() throws {
        let loaded = try RealModels.load("smollm2")
        let session = Session(loaded, contextLength: 512, threads: 2)
        let prompt = try PromptBuilder.chatPrompt(loaded, messages: [ChatMessage(role: "user", content: "Tell me a story.")])
        var options = GenerationOptions()
        options.maxTokens = 20
        options.sampler.temperature = 1.0
        options.sampler.seed = 1234
        let a = try session.generate(prompt: prompt, options: options) { _ in }
        // Same seed from the same state (a fresh session, as a new process would have): same tokens.
        let b = try Session(loaded, contextLength: 512, threads: 2).generate(prompt: prompt, options: options) { _ in }
        #expect(a.tokens == b.tokens)
        var other = options
        other.sampler.seed = 4321
        let c = try Session(loaded, contextLength: 512, threads: 2).generate(prompt: prompt, options: other) { _ in }
        #expect(c.tokens != a.tokens)
    }

    @Test func secondTurnReusesTheCache() throws {
        let loaded = try RealModels.load("smollm2")
        let session = Session(loaded, contextLength: 1024, threads: 2)
        var messages = [ChatMessage(role: "user", content: "Name a colour.")]
        var options = GenerationOptions()
        options.maxTokens = 16
        options.sampler = .greedy
        let first = try session.generate(prompt: try PromptBuilder.chatPrompt(loaded, messages: messages), options: options) { _ in }
        messages.append(ChatMessage(role: "assistant", content: first.text))
        messages.append(ChatMessage(role: "user", content: "Name another one."))
        let prompt2 = try PromptBuilder.chatPrompt(loaded, messages: messages)
        let second = try session.generate(prompt: prompt2, options: options) { _ in }
        #expect(second.promptEvaluated < prompt2.count / 2 + 8, "evaluated \(second.promptEvaluated) of \(prompt2.count)")
        // Same logits as evaluating the whole conversation from scratch.
        let fresh = Session(loaded, contextLength: 1024, threads: 2)
        let third = try fresh.generate(prompt: prompt2, options: options) { _ in }
        #expect(third.tokens == second.tokens)
    }

    @Test func stopStringCutsTheText() throws {
        let loaded = try RealModels.load("smollm2")
        let session = Session(loaded, contextLength: 512, threads: 2)
        let prompt = try PromptBuilder.chatPrompt(loaded, messages: [ChatMessage(role: "user", content: "Count from 1 to 20, separated by commas.")])
        var options = GenerationOptions()
        options.maxTokens = 80
        options.sampler = .greedy
        let full = try session.generate(prompt: prompt, options: options) { _ in }
        #expect(full.text.contains("5"), "text: \(full.text)")
        options.stop = ["5"]
        var streamed = ""
        let cut = try session.generate(prompt: prompt, options: options) { streamed += $0 }
        #expect(cut.stopReason == .stopString)
        #expect(!cut.text.contains("5") && full.text.hasPrefix(cut.text))
        #expect(streamed == cut.text)
    }

    @Test func contextOverflowIsAnError() throws {
        let loaded = try RealModels.load("smollm2")
        let session = Session(loaded, contextLength: 32, threads: 2)
        let long = loaded.tokenizer.encode(String(repeating: "word ", count: 100), addSpecial: false, parseSpecial: false)
        #expect(throws: InferenceError.self) { _ = try session.evaluate(long) }
        // Generation that fills the context stops with .contextFull.
        var options = GenerationOptions()
        options.maxTokens = 100
        options.sampler = .greedy
        options.ignoreEOS = true
        let r = try session.generate(prompt: Array(long.prefix(20)), options: options) { _ in }
        #expect(r.stopReason == .contextFull)
    }

    @Test func invalidTokenIsAnError() throws {
        let loaded = try RealModels.load("smollm2")
        let session = Session(loaded, contextLength: 64, threads: 1)
        #expect(throws: InferenceError.self) { _ = try session.evaluate([1, 999_999]) }
    }
}
