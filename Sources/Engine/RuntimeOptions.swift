// The runtime options of a run, resolved once: what the user gave (RuntimeSettings, nil: the default)
// against the model. The defaults live here and nowhere else (threads: all cores; context:
// min(trained, 4096), at least 16; batch 512; 8 state checkpoints; a 20G disk tier), and the KV budget
// and the weight placement under a RAM budget are computed here once, for the number of sequences
// actually served. Session, BatchEngine, Benchmark, Perplexity and the placement take the resolved
// values.

import Foundation
import GGUF
import Kernels
import KVCache
import Models
import VulkanBackend

/// What a command was given; nil is "the default".
public struct RuntimeSettings: Sendable, Equatable {
    public var threads: Int?
    public var contextLength: Int?
    /// Tokens per forward pass.
    public var batch: Int?
    public var kvType: KVType?
    /// Memory for the KV pages of all `sequences` (nil: what they need at the context length).
    public var kvBudgetBytes: Int?
    /// Folder of the KV disk tier (pages that do not fit the budget); nil: none.
    public var kvDiskDirectory: String?
    public var kvDiskBudgetBytes: Int?
    /// Side-state snapshots kept (DeepSeek V4, Qwen3.5).
    public var stateCheckpoints: Int?
    /// Peak resident memory: routed experts that do not fit are streamed from disk.
    public var ramBudgetBytes: Int?
    /// Sequences generating at once: 1 (run, chat, logits, perplexity, bench) or serve's --parallel.
    public var sequences = 1
    /// Continuous batching (serve): most prompt tokens evaluated between two decode steps. nil: a
    /// single sequence evaluates its prompt `batch` tokens at a time.
    public var prefillChunk: Int?
    /// --backend (nil: the CPU; the CLI's default is auto), --gpu-device, --gpu-budget.
    public var backend: BackendChoice?
    public var gpuDevice: Int?
    public var gpuBudgetBytes: Int?
    /// --gpu-int-dot: on, off, or nil (auto: where the device does them in hardware).
    public var gpuIntegerDot: Bool?

    public init(threads: Int? = nil, contextLength: Int? = nil, batch: Int? = nil, kvType: KVType? = nil) {
        self.threads = threads; self.contextLength = contextLength; self.batch = batch; self.kvType = kvType
    }
}

public enum RuntimeOptionsError: Error, CustomStringConvertible, Equatable {
    /// The KV element type does not suit the model (model.kvTypeProblem).
    case kvType(String)
    /// A RAM budget needs the loaded model (its file) to place the weights.
    case ramBudgetNeedsLoadedModel

    public var description: String {
        switch self {
        case .kvType(let problem): return problem
        case .ramBudgetNeedsLoadedModel: return "a RAM budget needs the model loaded from its file"
        }
    }
}

/// The KV disk tier: where idle sequences' pages go, and how much disk it may use.
public struct KVDiskSettings: Sendable, Equatable {
    public var directory: String
    public var budgetBytes: Int
    public init(directory: String, budgetBytes: Int) { self.directory = directory; self.budgetBytes = budgetBytes }
}

public struct RuntimeOptions: Sendable {
    public static let defaultBatch = 512
    public static let defaultContextCap = 4096
    public static let minimumContextLength = 16
    public static let defaultStateCheckpoints = 8
    public static let defaultKVDiskBudgetBytes = 20 << 30

    /// The thread count: `given`, else all cores.
    public static func threads(_ given: Int?) -> Int { max(1, given ?? WorkerPool.defaultThreadCount) }

    /// The context length: `given`, else the trained context capped at 4096 tokens (what llama.cpp and
    /// Ollama users expect); at least 16.
    public static func contextLength(_ given: Int?, trained: Int) -> Int {
        max(minimumContextLength, given ?? min(trained, defaultContextCap))
    }

    /// KV bytes `sequences` sequences of `contextLength` positions need at most, their prompts evaluated
    /// `prefillChunk` tokens at a time (sliding-window layers count only their window).
    public static func kvBudgetBytes(_ model: TransformerModel, contextLength: Int, prefillChunk: Int, type: KVType,
                                     sequences: Int) -> Int {
        max(1, sequences) * model.privatePoolPages(type: type, contextLength: contextLength, maxBatch: prefillChunk)
            * KVPagePool.pageBytes(model.kvShape(type: type), pageTokens: InferenceState.defaultPageTokens)
    }

    public var threads: Int
    public var contextLength: Int
    /// Rows of the forward pass's buffers: `batch` tokens, or with continuous batching a prompt chunk
    /// plus one decode token of every other sequence.
    public var batch: Int
    /// Prompt tokens evaluated per forward pass.
    public var prefillChunk: Int
    public var kvType: KVType
    /// Sequences generating at once.
    public var sequences: Int
    /// The KV pool of all sequences: --kv-budget, else what `sequences` sequences need at the context length.
    public var kvBudgetBytes: Int
    /// Whether a session takes its pages from the model's shared pool (a KV budget or disk tier was
    /// given) instead of a private pool of its context; a batch engine always does.
    public var sharesKVPool: Bool
    public var kvDisk: KVDiskSettings?
    public var stateCheckpoints: Int
    public var ramBudgetBytes: Int?
    /// Where the weights go under the RAM budget (nil: no budget).
    public var placement: WeightPlacement?
    /// The CPU or a device, and the line that says which (ComputeBackend.swift).
    public var backend: ResolvedBackend
    /// Which matrices the device holds (GPUPlacement; nil: the CPU, or a model without its file).
    public var gpuPlacement: GPUPlacement?

    /// Resolves `given` against `model`. A RAM budget needs the loaded model: see init(_:for: LoadedModel).
    public init(_ given: RuntimeSettings, for model: TransformerModel) throws {
        guard given.ramBudgetBytes == nil else { throw RuntimeOptionsError.ramBudgetNeedsLoadedModel }
        let type = given.kvType ?? .f32
        if let problem = model.kvTypeProblem(type) { throw RuntimeOptionsError.kvType(problem) }
        kvType = type
        threads = RuntimeOptions.threads(given.threads)
        contextLength = RuntimeOptions.contextLength(given.contextLength, trained: model.config.contextLength)
        sequences = max(1, given.sequences)
        let batch = max(1, given.batch ?? RuntimeOptions.defaultBatch)
        if let chunk = given.prefillChunk {
            prefillChunk = max(1, min(chunk, batch))
            self.batch = max(batch, prefillChunk + sequences)
        } else {
            prefillChunk = batch
            self.batch = batch
        }
        kvBudgetBytes = given.kvBudgetBytes ?? RuntimeOptions.kvBudgetBytes(
            model, contextLength: contextLength, prefillChunk: prefillChunk, type: type, sequences: sequences)
        sharesKVPool = given.kvBudgetBytes != nil || given.kvDiskDirectory != nil
        kvDisk = given.kvDiskDirectory.map {
            KVDiskSettings(directory: $0, budgetBytes: given.kvDiskBudgetBytes ?? RuntimeOptions.defaultKVDiskBudgetBytes)
        }
        stateCheckpoints = max(0, given.stateCheckpoints ?? RuntimeOptions.defaultStateCheckpoints)
        backend = try ResolvedBackend.resolve(given.backend, device: given.gpuDevice, budgetBytes: given.gpuBudgetBytes,
                                                  integerDot: given.gpuIntegerDot)
    }

    /// Resolves `given` against the loaded model; with a RAM budget, places the weights so the process
    /// (weights, the KV pool of all sequences, side-state snapshots, buffers) stays within it (the
    /// buffers are measured with the resolved threads and batch). The placement is applied by apply(to:).
    public init(_ given: RuntimeSettings, for loaded: LoadedModel) throws {
        var unbudgeted = given
        unbudgeted.ramBudgetBytes = nil
        try self.init(unbudgeted, for: loaded.model)
        if let budget = given.ramBudgetBytes {
            ramBudgetBytes = budget
            let scratch = loaded.sessionScratchBytes(batch: batch, threads: threads)
                + loaded.sideStateBudgetBytes(contextLength: contextLength, type: kvType, checkpoints: stateCheckpoints)
            placement = try loaded.placement(budgetBytes: budget, kvBytes: kvBudgetBytes, scratchBytes: scratch)
        }
        // Streamed experts are computed from RAM slots on the CPU: the GPU holds the rest (three tiers).
        placeOnDevice(gguf: loaded.gguf, model: loaded.model, statistics: loaded.loadExpertStatistics(),
                      experts: !(placement?.streaming ?? false))
    }

    /// With a device backend: plans which of `model`'s matrices (loaded from `gguf`) the device holds under its
    /// budget (GPUPlacement; `statistics`: the experts' activation counts, none: uniform) and gives the plan to the
    /// device. Done by init(_:for: LoadedModel); a command holding the model without LoadedModel calls it itself.
    /// `experts` false: routed experts stay on the CPU (they are streamed through RAM slots).
    public mutating func placeOnDevice(gguf: GGUFFile, model: TransformerModel, statistics: [(layer: Int, expert: Int, count: Int)] = [],
                                       experts: Bool = true) {
        guard let vulkan = backend.provider as? VulkanBackendProvider else { return }
        let plan = GPUPlacement(gguf: gguf, model: model, budgetBytes: vulkan.context.budgetBytes, statistics: statistics,
                                experts: experts)
        vulkan.context.place(plan.residency)
        gpuPlacement = plan
    }

    /// Applies the placement to `loaded` (routed experts read into slots from now on); returns a line
    /// describing it, or nil without a RAM budget.
    @discardableResult
    public func apply(to loaded: LoadedModel) throws -> String? {
        guard let placement else { return nil }
        let warmed = try loaded.apply(placement)
        return "placement: \(placement)" + (warmed > 0 ? "; \(warmed) most used experts read in at start" : "")
    }

    /// The model's shared KV pool with this budget (and disk tier), its checkpoint limit set.
    public func kvPool(_ loaded: LoadedModel) throws -> KVPagePool {
        let pool = try loaded.kvPool(budgetBytes: kvBudgetBytes, type: kvType, diskDirectory: kvDisk?.directory,
                                     diskBudgetBytes: kvDisk?.budgetBytes ?? RuntimeOptions.defaultKVDiskBudgetBytes)
        pool.checkpointLimit = stateCheckpoints
        return pool
    }

    /// A session with these options: its pages from the shared pool when a KV budget or disk tier was
    /// given, else from a private pool of its context.
    public func session(_ loaded: LoadedModel) throws -> Session {
        let session = Session(loaded, options: self, kvPool: sharesKVPool ? try kvPool(loaded) : nil)
        session.state.cache.pool.checkpointLimit = stateCheckpoints
        return session
    }

    /// An inference state for `model` alone (no session): the context, batch, threads and KV type.
    public func inferenceState(_ model: TransformerModel) -> InferenceState {
        InferenceState(model: model, contextLength: contextLength, maxBatch: batch, threads: threads, kvType: kvType, backend: backend.provider)
    }
}
