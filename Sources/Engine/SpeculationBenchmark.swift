// `dwarfstar bench --spec`: greedy generation of a workload's prompts with and without speculation,
// alternated prompt by prompt (the order flips every repetition), each in a fresh session so both
// prefill the same prompt cold. Per kind of prompt: generated tokens over generation seconds, plain and
// speculative, the median over repetitions of their ratio, drafted and accepted tokens, and whether
// every speculative output equals the plain one (greedy decoding must not change a token).

import Foundation
import Sampling

/// One prompt of a speculation workload and the kind of work it is (code, quote, prose, ...).
public struct SpeculationWorkload: Sendable, Codable, Equatable {
    public var kind: String
    public var prompt: String
    public init(kind: String, prompt: String) { self.kind = kind; self.prompt = prompt }

    /// A small set used when no workload file is given: one text to copy, one to write freely.
    public static let builtin: [SpeculationWorkload] = [
        SpeculationWorkload(kind: "quote", prompt: """
            Quote the following paragraph word for word, then summarise it in one sentence.

            The engine reads each weight matrix once per decode step, so a single stream is bound by memory \
            bandwidth. Several streams, or several drafted tokens of one stream, share that read: the same \
            pass over the weights then yields more than one token. Speculation guesses the next tokens cheaply \
            and checks all of them in one pass, keeping those the model agrees with.
            """),
        SpeculationWorkload(kind: "prose", prompt: "Write a short story about a lighthouse keeper."),
    ]

    /// A JSON Lines file of {"kind": ..., "prompt": ...}.
    public static func load(_ path: String) throws -> [SpeculationWorkload] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let decoder = JSONDecoder()
        var items: [SpeculationWorkload] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            do { items.append(try decoder.decode(SpeculationWorkload.self, from: Data(line.utf8))) } catch {
                throw SpeculationBenchmarkError.badLine(path: path, line: number + 1, reason: "\(error)")
            }
        }
        guard !items.isEmpty else { throw SpeculationBenchmarkError.badLine(path: path, line: 0, reason: "no prompts") }
        return items
    }
}

public enum SpeculationBenchmarkError: Error, CustomStringConvertible {
    case badLine(path: String, line: Int, reason: String)
    public var description: String {
        switch self {
        case .badLine(let path, let line, let reason): return "\(path):\(line): not a {\"kind\", \"prompt\"} line (\(reason))"
        }
    }
}

public struct SpeculationBenchRow: Sendable {
    public var kind = ""
    public var prompts = 0
    /// Generated tokens per generation second, summed over the kind's prompts (medians over repetitions).
    public var plainTokensPerSecond = 0.0
    public var speculativeTokensPerSecond = 0.0
    /// Median over repetitions of speculative / plain.
    public var ratio = 0.0
    public var drafted = 0
    public var accepted = 0
    public var identical = true
}

public enum SpeculationBenchmark {
    /// Runs every prompt (chat template applied when the model has one) plain and with `speculation`.
    public static func run(_ loaded: LoadedModel, workload: [SpeculationWorkload], speculation: SpeculationOptions,
                           options: RuntimeOptions, maxTokens: Int, repetitions: Int,
                           progress: (String) -> Void = { _ in }) throws -> [SpeculationBenchRow] {
        let kinds = workload.reduce(into: [String]()) { if !$0.contains($1.kind) { $0.append($1.kind) } }
        let prompts = try workload.map { item in
            loaded.chatTemplate == nil ? PromptBuilder.rawPrompt(loaded, item.prompt)
                : try PromptBuilder.chatPrompt(loaded, messages: [ChatMessage(role: "user", content: item.prompt)])
        }
        var generation = GenerationOptions()
        generation.maxTokens = maxTokens
        generation.sampler = .greedy
        // tokens and seconds per [repetition][kind][plain, speculative]
        var totals = [[String: [(tokens: Int, seconds: Double)]]](repeating: [:], count: repetitions)
        var rows = kinds.map { kind in
            var row = SpeculationBenchRow()
            row.kind = kind
            row.prompts = workload.filter { $0.kind == kind }.count
            return row
        }
        for repetition in 0..<repetitions {
            for (index, item) in workload.enumerated() {
                var outputs: [[Int32]] = [[], []]
                for turn in 0..<2 {
                    let speculative = (turn + repetition) % 2 == 1
                    var o = generation
                    o.speculation = speculative ? speculation : nil
                    let r = try Session(loaded, options: options).generate(prompt: prompts[index], options: o) { _ in }
                    outputs[speculative ? 1 : 0] = r.tokens
                    var pair = totals[repetition][item.kind] ?? [(0, 0), (0, 0)]
                    pair[speculative ? 1 : 0].tokens += r.tokens.count
                    pair[speculative ? 1 : 0].seconds += r.generationSeconds
                    totals[repetition][item.kind] = pair
                    if speculative, repetition == 0, let s = r.speculation, let k = kinds.firstIndex(of: item.kind) {
                        rows[k].drafted += s.drafted
                        rows[k].accepted += s.accepted
                    }
                }
                if outputs[0] != outputs[1], let k = kinds.firstIndex(of: item.kind) { rows[k].identical = false }
                progress("repetition \(repetition + 1)/\(repetitions), prompt \(index + 1)/\(workload.count) (\(item.kind))")
            }
        }
        func median(_ v: [Double]) -> Double {
            let s = v.sorted()
            return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        for k in rows.indices {
            let perRepetition = totals.compactMap { $0[rows[k].kind] }
            func rate(_ pair: [(tokens: Int, seconds: Double)], _ i: Int) -> Double { pair[i].seconds > 0 ? Double(pair[i].tokens) / pair[i].seconds : 0 }
            rows[k].plainTokensPerSecond = median(perRepetition.map { rate($0, 0) })
            rows[k].speculativeTokensPerSecond = median(perRepetition.map { rate($0, 1) })
            rows[k].ratio = median(perRepetition.map { rate($0, 0) > 0 ? rate($0, 1) / rate($0, 0) : 0 })
        }
        return rows
    }
}
