// Options and helpers shared by the subcommands.

import ArgumentParser
import Engine
import Foundation
import Platform
import Kernels
import KVCache
import Models
import Sampling

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Exits with a clear message instead of a stack trace for expected failures.
/// An ExitCode (a pipeline rank that is done, a status already reported) passes through as it is.
func fail(_ error: Error) -> ExitCode {
    if let exit = error as? ExitCode { return exit }
    printErr("error: \(error)")
    return ExitCode(1)
}

// Runtime options come in groups, so a command declares only those it uses (an option it does not use
// is an unknown option); each group writes what it was given into RuntimeSettings, and Engine's
// RuntimeOptions resolves them against the model (defaults, KV budget, placement) in one place.

/// An option group that contributes to the runtime settings.
protocol RuntimeOptionGroup: ParsableArguments {
    func apply(to settings: inout RuntimeSettings) throws
}

/// The settings `groups` were given.
func runtimeSettings(_ groups: [any RuntimeOptionGroup]) throws -> RuntimeSettings {
    var settings = RuntimeSettings()
    for group in groups { try group.apply(to: &settings) }
    return settings
}

/// -m, -t, -b, --kv-type: every command that runs a model.
struct ModelOptions: RuntimeOptionGroup {
    @Option(name: [.short, .customLong("model")], help: "Model name (smollm2, gemma3-270m) or path to a GGUF file.")
    var model: String = ModelStore.defaultModelName

    @Option(name: [.short, .customLong("threads")], help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(name: [.customShort("b"), .customLong("batch")], help: "Prompt tokens evaluated per forward pass.")
    var batch: Int = RuntimeOptions.defaultBatch

    @Option(name: .customLong("kv-type"), help: "KV cache element type: f32 (default), f16 (half the memory) or q8_0 (27%).")
    var kvType: String?

    @Flag(inversion: .prefixedNo, help: ArgumentHelp(
        "Packed copies of the dense weights: one kernel for any number of tokens (faster batches, drafts and small models), made once at load; --no-repack uses the file's rows in place.",
        discussion: "Default: on for files under 1 GiB (their decode is compute-bound, and packing makes it faster) and for serve --parallel > 1; off otherwise (a large model's single-stream decode runs at the memory's speed either way, and the copy costs load time)."))
    var repack: Bool?

    @Option(help: ArgumentHelp("Where the model runs: auto (a GPU when there is one, else the CPU), cpu, or vulkan (the best Vulkan device, even one that runs on the CPU).",
                               valueName: "auto|cpu|vulkan"))
    var backend: String = BackendChoice.auto.rawValue

    @Option(name: .customLong("gpu-device"), help: "The Vulkan device to run on (numbers from `dwarfstar devices`; default: the best GPU).")
    var gpuDevice: Int?

    @Option(name: .customLong("gpu-budget"), help: "Most bytes of weights kept on the GPU, e.g. 8G (default: 90% of its memory); products of the other matrices run on the CPU.")
    var gpuBudget: String?

    @Option(name: .customLong("gpu-int-dot"), help: ArgumentHelp("Products of Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weights on the GPU by integer dot products over 8-bit activations: auto (where the GPU does them in hardware), on or off.",
                                                                  valueName: "auto|on|off"))
    var gpuIntDot: String = "auto"

    func apply(to settings: inout RuntimeSettings) throws {
        settings.threads = threads
        settings.batch = batch
        settings.kvType = kvType.flatMap(KVType.init(rawValue:))
        settings.backend = BackendChoice(rawValue: backend)
        settings.gpuDevice = gpuDevice
        settings.gpuBudgetBytes = try gpuBudget.map(parseByteSize)
        settings.gpuIntegerDot = try parseIntegerDot(gpuIntDot)
    }

    func parseIntegerDot(_ text: String) throws -> Bool? {
        switch text {
        case "auto": return nil
        case "on": return true
        case "off": return false
        default: throw ValidationError("--gpu-int-dot takes auto, on or off, not \(text)")
        }
    }

    /// Files up to this size get packed weights by default.
    static let repackSizeLimit = 1 << 30

    /// --repack / --no-repack, else packed for a small file or several sequences at once (see --help).
    func weightLayout(path: String, sequences: Int) -> WeightLayout {
        if let repack { return repack ? .packed : .rowMajor }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? Int.max
        return size < ModelOptions.repackSizeLimit || sequences > 1 ? .packed : .rowMajor
    }

    /// Loads the model; with `streamingExperts` (a RAM budget) the mapping reads only what is touched.
    /// Shows a progress bar on a terminal while a model over 1 GiB is read in.
    /// `prepare` runs on the model before its weights are read in (an expert-parallel rank takes its share).
    func load(streamingExperts: Bool, sequences: Int = 1, prepare: (LoadedModel) throws -> Void = { _ in }) throws -> LoadedModel {
        let path = try ModelStore.resolveOrPull(model)
        let layout = weightLayout(path: path, sequences: sequences)
        let loaded = try LoadedModel(path: path, streamingExperts: streamingExperts, weightLayout: layout)
        try prepare(loaded)
        // A large file's weights are read in at load, with a progress bar on a terminal, rather than
        // faulted in by the first prompt (packed copies were read while they were made). A rank holding a
        // share of the experts reads the others' never: its own are faulted in as they are used.
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        if size > ModelOptions.repackSizeLimit && (layout == .rowMajor || streamingExperts) {
            var bar: TerminalProgress?
            loaded.readIn(residentOnly: streamingExperts || loaded.model.expertShard != nil) { done, total in
                if bar == nil { bar = TerminalProgress("load", total: total, unit: .bytes) }
                bar?.update(done)
            }
            bar?.finish()
        }
        return loaded
    }

    /// Loads the model and resolves the runtime options given to these and the `other` groups, after
    /// `adjust` has set what the command itself decides (a context of its own); a placement under
    /// --ram-budget is applied and printed unless `applyPlacement` is false. The one way commands that
    /// load a model get their options.
    func loadResolved(_ other: [any RuntimeOptionGroup] = [], applyPlacement: Bool = true, distributed: PipelineOptions? = nil,
                      adjust: (inout RuntimeSettings) -> Void = { _ in }) throws -> (LoadedModel, RuntimeOptions) {
        var settings = try runtimeSettings([self] + other)
        adjust(&settings)
        let loaded = try load(streamingExperts: settings.ramBudgetBytes != nil, sequences: settings.sequences) { loaded in
            try distributed?.prepare(loaded.model, statistics: loaded.loadExpertStatistics())
        }
        let options = try RuntimeOptions(settings, for: loaded)
        printErr(options.backend.line)
        if let gpu = options.gpuPlacement { printErr(gpu.description) }
        if applyPlacement, let line = try options.apply(to: loaded) { printErr(line) }
        return (loaded, options)
    }

    func validate() throws {
        if let t = threads, t < 1 || t > 1024 { throw ValidationError("--threads must be between 1 and 1024") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if let kvType, KVType(rawValue: kvType) == nil { throw ValidationError("--kv-type must be f32, f16 or q8_0") }
        if BackendChoice(rawValue: backend) == nil { throw ValidationError("--backend must be auto, cpu or vulkan") }
        if let d = gpuDevice, d < 0 { throw ValidationError("--gpu-device must be 0 or more") }
        if let gpuBudget { _ = try parseByteSize(gpuBudget) }
        _ = try parseIntegerDot(gpuIntDot)
    }
}

/// -c/--ctx: the context length.
struct ContextOption: RuntimeOptionGroup {
    @Option(name: [.short, .customLong("ctx")], help: "Context size in tokens (default: min(trained, 4096)).")
    var contextSize: Int?

    func apply(to settings: inout RuntimeSettings) throws { settings.contextLength = contextSize }

    func validate() throws {
        if let c = contextSize, c < RuntimeOptions.minimumContextLength {
            throw ValidationError("--ctx must be at least \(RuntimeOptions.minimumContextLength)")
        }
    }
}

/// Groups whose options are byte sizes ("512M", "2G"): each is read when parsed, so a bad one is an
/// error before the model loads.
protocol ByteSizeOptionGroup: RuntimeOptionGroup {
    var byteSizes: [String?] { get }
}

extension ByteSizeOptionGroup {
    func validate() throws { for case let size? in byteSizes { _ = try parseByteSize(size) } }
}

/// --ram-budget: peak resident memory, routed experts streamed from disk.
struct RAMBudgetOption: ByteSizeOptionGroup {
    @Option(name: .customLong("ram-budget"), help: "Keep peak resident memory within this, e.g. 8G: routed MoE experts that do not fit are streamed from disk.")
    var ramBudget: String?

    var byteSizes: [String?] { [ramBudget] }
    func apply(to settings: inout RuntimeSettings) throws { settings.ramBudgetBytes = try ramBudget.map(parseByteSize) }
}

/// --ram-budget for plan, where it is required.
struct RequiredRAMBudgetOption: ByteSizeOptionGroup {
    @Option(name: .customLong("ram-budget"), help: "RAM budget, e.g. 8G (as in run and serve).")
    var ramBudget: String

    var byteSizes: [String?] { [ramBudget] }
    func apply(to settings: inout RuntimeSettings) throws { settings.ramBudgetBytes = try parseByteSize(ramBudget) }
}

/// --parallel, --prefill-chunk: continuous batching (serve; plan with either plans for serve). The KV
/// budget covers --parallel sequences.
struct BatchingOptions: RuntimeOptionGroup {
    static let defaultParallel = 4, defaultPrefillChunk = 256

    @Option(help: "Requests generated at once (continuous batching; default: 4).")
    var parallel: Int?

    @Option(name: .customLong("prefill-chunk"), help: "Most prompt tokens evaluated between two decode steps (default: 256).")
    var prefillChunk: Int?

    /// Whether either was given.
    var given: Bool { parallel != nil || prefillChunk != nil }

    func apply(to settings: inout RuntimeSettings) throws {
        settings.sequences = parallel ?? BatchingOptions.defaultParallel
        settings.prefillChunk = prefillChunk ?? BatchingOptions.defaultPrefillChunk
    }

    func validate() throws {
        if let parallel, !(1...256).contains(parallel) { throw ValidationError("--parallel must be between 1 and 256") }
        if let prefillChunk, prefillChunk < 1 { throw ValidationError("--prefill-chunk must be at least 1") }
    }
}

/// --state-checkpoints: side-state snapshots (DeepSeek V4, Qwen3.5).
struct CheckpointOption: RuntimeOptionGroup {
    @Option(name: .customLong("state-checkpoints"), help: "Snapshots kept of the state DeepSeek V4 and Qwen3.5 hold beside the KV cache (a later turn, rollback or shared prefix restarts from one instead of replaying the conversation); 0 = none.")
    var stateCheckpoints: Int = RuntimeOptions.defaultStateCheckpoints

    func apply(to settings: inout RuntimeSettings) throws { settings.stateCheckpoints = stateCheckpoints }

    func validate() throws {
        if !(0...1024).contains(stateCheckpoints) { throw ValidationError("--state-checkpoints must be between 0 and 1024") }
    }
}

/// --kv-budget: memory for the KV pool.
struct KVBudgetOption: ByteSizeOptionGroup {
    @Option(name: .customLong("kv-budget"), help: "Memory for the KV cache, e.g. 512M or 2G (default: what the context needs, for each parallel sequence).")
    var kvBudget: String?

    var byteSizes: [String?] { [kvBudget] }
    func apply(to settings: inout RuntimeSettings) throws { settings.kvBudgetBytes = try kvBudget.map(parseByteSize) }
}

/// --kv-disk, --kv-disk-budget: the KV disk tier.
struct KVDiskOptions: ByteSizeOptionGroup {
    @Option(name: .customLong("kv-disk"), help: "Folder for KV pages that do not fit --kv-budget (idle sessions' pages are swapped there).")
    var kvDisk: String?

    @Option(name: .customLong("kv-disk-budget"), help: "Most disk space the KV disk tier may use (default: 20G).")
    var kvDiskBudget: String?

    func apply(to settings: inout RuntimeSettings) throws {
        settings.kvDiskDirectory = kvDisk
        settings.kvDiskBudgetBytes = try kvDiskBudget.map(parseByteSize)
    }

    var byteSizes: [String?] { [kvDiskBudget] }
}

/// --parse-special-in-content: how message text is tokenized (run, chat, serve).
struct ContentOptions: ParsableArguments {
    @Flag(name: .customLong("parse-special-in-content"),
          help: "Turn markup like <|im_end|> typed inside messages into control tokens (default: it stays text, so a message cannot forge a turn).")
    var parseSpecialInContent = false
}

/// run, chat, serve: every runtime option.
struct SessionOptions: ParsableArguments {
    @OptionGroup var model: ModelOptions
    @OptionGroup var context: ContextOption
    @OptionGroup var kvBudget: KVBudgetOption
    @OptionGroup var kvDisk: KVDiskOptions
    @OptionGroup var checkpoints: CheckpointOption
    @OptionGroup var ramBudget: RAMBudgetOption
    @OptionGroup var content: ContentOptions

    var parseSpecialInContent: Bool { content.parseSpecialInContent }

    /// The groups besides `model` that make the runtime settings.
    var runtimeGroups: [any RuntimeOptionGroup] { [context, kvBudget, kvDisk, checkpoints, ramBudget] }

    /// The model and its resolved runtime options for one sequence (see ModelOptions.loadResolved).
    func loadResolved(distributed: PipelineOptions? = nil) throws -> (LoadedModel, RuntimeOptions) {
        try model.loadResolved(runtimeGroups, distributed: distributed)
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

/// How the streamed experts fared (nil: none are streamed).
func expertStreamingSummary(_ model: TransformerModel) -> String? {
    guard let cache = model.expertCache else { return nil }
    let st = cache.stats
    return String(format: "experts: %.1f%% hits (%d prefetched, %d prefetches unused), %.1f MiB read (%@), %.2f s waiting for reads, next-layer prediction precision %.0f%% recall %.0f%%",
                  100 * st.hitRate, st.prefetchHits, st.prefetchWasted, Double(st.bytesFromStorage) / 1048576, cache.readMode.rawValue, st.waitSeconds,
                  100 * st.precision, 100 * st.recall)
}

func formatStats(_ loaded: LoadedModel, _ r: GenerationResult) -> String {
    var s = String(format: "load %.2f s | prompt %d tokens (%d evaluated) %.1f tok/s | generation %d tokens %.1f tok/s | stop: %@",
                   loaded.loadSeconds, r.promptTokens, r.promptEvaluated, r.promptTokensPerSecond, r.tokens.count,
                   r.generationTokensPerSecond, r.stopReason.rawValue)
    if let experts = expertStreamingSummary(loaded.model) { s += " | " + experts }
    if let peak = LoadedModel.peakResidentBytes() { s += " | peak RSS \(peak >> 20) MiB" }
    if let spec = r.speculation { s += " | " + spec.summary }
    return s
}

struct SpeculationFlags: ParsableArguments {
    @Option(name: .customLong("spec"), help: ArgumentHelp(
        "Speculative decoding: ngram (drafts from earlier text), draft (a smaller model, --draft-model) or mtp (the model's own MTP / next-n layer). Drafts are verified in one pass; the output is unchanged (greedy: token for token; sampling: in distribution). Not for JSON-schema requests.",
        valueName: "ngram|draft|mtp"))
    var mode: SpeculationMode?
    @Option(name: .customLong("draft-model"), help: ArgumentHelp(
        "The draft model for --spec draft (implies it): a GGUF path or a model name, with the same vocabulary.", valueName: "model"))
    var draftModel: String?
    @Option(name: .customLong("draft-max"), help: "Longest draft (the length used is tuned as it runs).") var draftMax: Int = 16
    @Option(name: .customLong("draft-min"), help: "Shortest draft: every step drafts at least this many tokens, even when the tuner measures no gain (0: tuned).")
    var draftMin: Int = 0

    var asked: Bool { mode != nil || draftModel != nil }

    /// The options for `target`, the draft model loaded (once) and checked against it when there is one.
    func options(for target: LoadedModel) throws -> SpeculationOptions? {
        guard asked else { return nil }
        let mode = mode ?? .draft
        var options = SpeculationOptions(mode: mode, draftMax: draftMax)
        options.draftMin = draftMin
        options.rememberPassCosts = true
        if mode == .draft, let name = draftModel {
            options.draftModel = try LoadedModel(path: try ModelStore.resolveOrPull(name))
        }
        if let problem = options.problem(for: target) { throw ValidationError(problem) }
        return options
    }

    func validate() throws {
        if draftMax < 1 { throw ValidationError("--draft-max must be ≥ 1") }
        if draftMin < 0 || draftMin > draftMax { throw ValidationError("--draft-min must be between 0 and --draft-max") }
        if mode == .draft && draftModel == nil { throw ValidationError("--spec draft needs --draft-model FILE") }
        if mode == .ngram && draftModel != nil { throw ValidationError("--draft-model drafts with a model: use --spec draft (or leave --spec out)") }
    }
}

extension SpeculationMode: ExpressibleByArgument {}

/// While `state` evaluates a prompt of several batches, a progress bar on a terminal (cleared when the
/// prompt is done, before any answer text).
func showPromptProgress(on state: InferenceState) {
    var bar: TerminalProgress?
    state.onChunkProgress = { done, total in
        if bar == nil || bar?.total != Int64(total) { bar = TerminalProgress("prompt", total: Int64(total), unit: .tokens) }
        bar?.update(Int64(done))
        if done >= total {
            bar?.finish()
            bar = nil
        }
    }
}
