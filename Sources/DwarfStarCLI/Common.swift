// Options and helpers shared by the subcommands.

import ArgumentParser
import Engine
import Foundation
import KVCache
import Models
import Sampling

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Exits with a clear message instead of a stack trace for expected failures.
func fail(_ error: Error) -> ExitCode {
    printErr("error: \(error)")
    return ExitCode(1)
}

struct ModelOptions: ParsableArguments {
    @Option(name: [.short, .customLong("model")], help: "Model name (smollm2, gemma3-270m) or path to a GGUF file.")
    var model: String = ModelStore.defaultModelName

    @Option(name: [.short, .customLong("threads")], help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(name: [.short, .customLong("ctx")], help: "Context size in tokens (default: min(trained, 4096)).")
    var contextSize: Int?

    @Option(name: [.customShort("b"), .customLong("batch")], help: "Prompt tokens evaluated per forward pass.")
    var batch: Int = 512

    @Flag(name: .customLong("parse-special-in-content"),
          help: "Turn markup like <|im_end|> typed inside messages into control tokens (default: it stays text, so a message cannot forge a turn).")
    var parseSpecialInContent = false

    @Option(name: .customLong("kv-budget"), help: "Memory for the KV cache, e.g. 512M or 2G (default: what the context needs).")
    var kvBudget: String?

    @Option(name: .customLong("kv-disk"), help: "Folder for KV pages that do not fit --kv-budget (idle sessions' pages are swapped there).")
    var kvDisk: String?

    @Option(name: .customLong("kv-disk-budget"), help: "Most disk space the KV disk tier may use (default 20G).")
    var kvDiskBudget: String = "20G"

    @Option(name: .customLong("kv-type"), help: "KV cache element type: f32, f16 (half the memory) or q8_0 (27%).")
    var kvType: String = "f32"

    var kvElementType: KVType { KVType(rawValue: kvType) ?? .f32 }

    @Option(name: .customLong("state-checkpoints"), help: "Snapshots kept of the state DeepSeek V4 and Qwen3.5 hold beside the KV cache (a later turn, rollback or shared prefix restarts from one instead of replaying the conversation); 0 = none.")
    var stateCheckpoints: Int = 8

    @Option(name: .customLong("ram-budget"), help: "Keep peak resident memory within this, e.g. 8G: routed MoE experts that do not fit are streamed from disk.")
    var ramBudget: String?

    /// A session with these options; with --kv-budget or --kv-disk its KV pages come from the model's
    /// shared pool.
    func session(_ loaded: LoadedModel, contextLength: Int? = nil) throws -> Session {
        if let problem = loaded.model.kvTypeProblem(kvElementType) { throw ValidationError(problem) }
        let ctx = contextLength ?? contextSize
        var pool: KVPagePool? = nil
        if kvBudget != nil || kvDisk != nil {
            let defaultBudget = loaded.kvBytes(contextLength: ctx ?? min(loaded.model.config.contextLength, 4096), batch: batch,
                                               type: kvElementType)
            pool = try loaded.kvPool(budgetBytes: try kvBudget.map(parseByteSize) ?? defaultBudget, type: kvElementType,
                                     diskDirectory: kvDisk, diskBudgetBytes: try parseByteSize(kvDiskBudget))
        }
        let session = Session(loaded, contextLength: ctx, threads: threads, batch: batch, kvType: kvElementType, kvPool: pool)
        session.state.cache.pool.checkpointLimit = stateCheckpoints
        return session
    }

    func load(pullIfMissing: Bool = true) throws -> LoadedModel {
        let path = pullIfMissing ? try ModelStore.resolveOrPull(model) : try ModelStore.resolve(model)
        let loaded = try LoadedModel(path: path, streamingExperts: ramBudget != nil)
        if let budget = try ramBudget.map(parseByteSize) {
            let kv = try kvBudget.map(parseByteSize)
                ?? loaded.kvBytes(contextLength: contextSize ?? min(loaded.model.config.contextLength, 4096), batch: batch, type: kvElementType)
            let plan = try loaded.placement(budgetBytes: budget, kvBytes: kv, scratchBytes: loaded.sessionScratchBytes(batch: batch)
                + loaded.sideStateBudgetBytes(contextLength: contextSize, type: kvElementType, checkpoints: stateCheckpoints))
            let warmed = try loaded.apply(plan)
            printErr("placement: \(plan)" + (warmed > 0 ? "; \(warmed) most used experts read in at start" : ""))
        }
        return loaded
    }

    func validate() throws {
        if let t = threads, t < 1 || t > 1024 { throw ValidationError("--threads must be between 1 and 1024") }
        if let c = contextSize, c < 16 { throw ValidationError("--ctx must be at least 16") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if !(0...1024).contains(stateCheckpoints) { throw ValidationError("--state-checkpoints must be between 0 and 1024") }
        if let b = kvBudget { _ = try parseByteSize(b) }
        if let b = ramBudget { _ = try parseByteSize(b) }
        _ = try parseByteSize(kvDiskBudget)
        guard KVType(rawValue: kvType) != nil else { throw ValidationError("--kv-type must be f32, f16 or q8_0") }
    }
}

struct SamplingOptions: ParsableArguments {
    @Option(help: "Temperature (0 = greedy).") var temp: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Top-k (0 = off).") var topK: Int = 40
    @Option(name: .customLong("top-p"), help: "Top-p (1 = off).") var topP: Float = 0.95
    @Option(name: .customLong("min-p"), help: "Min-p (0 = off).") var minP: Float = 0.05
    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty (1 = off).") var repeatPenalty: Float = 1.0
    @Option(name: .customLong("repeat-last-n"), help: "Tokens the penalties look back over.") var repeatLastN: Int = 64
    @Option(name: .customLong("presence-penalty")) var presencePenalty: Float = 0
    @Option(name: .customLong("frequency-penalty")) var frequencyPenalty: Float = 0
    @Option(help: "RNG seed (same seed, same output).") var seed: UInt64?
    @Option(name: .customLong("stop"), help: "Stop string (repeatable).") var stop: [String] = []

    var parameters: SamplerParameters {
        var p = SamplerParameters()
        p.temperature = temp; p.topK = topK; p.topP = topP; p.minP = minP
        p.repeatPenalty = repeatPenalty; p.penaltyLastN = repeatLastN
        p.presencePenalty = presencePenalty; p.frequencyPenalty = frequencyPenalty; p.seed = seed
        return p
    }

    func validate() throws {
        if temp < 0 { throw ValidationError("--temp must be ≥ 0") }
        if topP <= 0 || topP > 1 { throw ValidationError("--top-p must be in (0, 1]") }
        if minP < 0 || minP > 1 { throw ValidationError("--min-p must be in [0, 1]") }
        if repeatPenalty <= 0 { throw ValidationError("--repeat-penalty must be > 0") }
    }
}

/// "512M", "2G", "1.5GiB", "1000000" → bytes.
func parseByteSize(_ text: String) throws -> Int {
    let t = text.trimmingCharacters(in: .whitespaces).uppercased()
    let gib = 1_073_741_824.0, mib = 1_048_576.0, kib = 1024.0
    let units: [(String, Double)] = [("GIB", gib), ("MIB", mib), ("KIB", kib), ("GB", gib), ("MB", mib),
                                     ("KB", kib), ("G", gib), ("M", mib), ("K", kib), ("B", 1)]
    var number = t, scale = 1.0
    for (suffix, factor) in units where t.hasSuffix(suffix) {
        number = String(t.dropLast(suffix.count)); scale = factor; break
    }
    guard let v = Double(number.trimmingCharacters(in: .whitespaces)), v > 0, v * scale < 1e15 else {
        throw ValidationError("cannot read the size '\(text)' (use e.g. 512M or 2G)")
    }
    return Int(v * scale)
}

func writeOut(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}

func formatStats(_ loaded: LoadedModel, _ r: GenerationResult) -> String {
    var s = String(format: "load %.2f s | prompt %d tokens (%d evaluated) %.1f tok/s | generation %d tokens %.1f tok/s | stop: %@",
                   loaded.loadSeconds, r.promptTokens, r.promptEvaluated, r.promptTokensPerSecond, r.tokens.count,
                   r.generationTokensPerSecond, r.stopReason.rawValue)
    if let cache = loaded.model.expertCache {
        let st = cache.stats
        s += String(format: " | experts: %.1f%% hits (%d prefetched, %d prefetches unused), %.1f MiB read (%@), %.2f s waiting for reads, next-layer prediction precision %.0f%% recall %.0f%%",
                    100 * st.hitRate, st.prefetchHits, st.prefetchWasted, Double(st.bytesFromStorage) / 1048576, cache.readMode.rawValue, st.waitSeconds,
                    100 * st.precision, 100 * st.recall)
    }
    if let peak = LoadedModel.peakResidentBytes() { s += " | peak RSS \(peak >> 20) MiB" }
    return s
}
