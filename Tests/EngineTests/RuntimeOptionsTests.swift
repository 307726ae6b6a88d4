// RuntimeOptions, the one resolver of runtime options: its defaults (all cores, min(trained, 4096) and
// at least 16, batch 512, 8 state checkpoints, a private KV pool of the context), the KV type checked
// against the model, and a KV budget and placement that cover the sequences actually served.

import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import Engine
import GGUF
import KVCache
import Models

/// Logical CPUs, as the engine counts them ("all cores").
let allCores: Int = {
    #if os(Linux)
    return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #else
    return max(1, ProcessInfo.processInfo.activeProcessorCount)
    #endif
}()

struct RuntimeOptionsTests {
    /// Trained context 2048, 512 bytes of KV per position.
    static let tiny = modelFixtures.appendingPathComponent("qwen2.f32.gguf").path

    @Test func defaults() throws {
        let loaded = try LoadedModel(path: Self.tiny)
        let o = try RuntimeOptions(RuntimeSettings(), for: loaded)
        #expect(o.threads == allCores)
        #expect(o.contextLength == 2048)   // min(trained 2048, 4096)
        #expect(o.batch == 512 && o.prefillChunk == 512 && o.kvType == .f32 && o.sequences == 1)
        #expect(o.kvBudgetBytes == loaded.kvBytes(contextLength: 2048, batch: 512))
        #expect(!o.sharesKVPool && o.kvDisk == nil && o.stateCheckpoints == 8)
        #expect(o.ramBudgetBytes == nil && o.placement == nil)
        let session = try o.session(loaded)
        #expect(session.contextLength == 2048 && session.state.maxBatch == 512)
        #expect(session.state.cache.pool.bytes <= o.kvBudgetBytes)
    }

    @Test func contextDefaultIsTheTrainedContextCappedAt4096AndAtLeast16() throws {
        #expect(RuntimeOptions.contextLength(nil, trained: 2048) == 2048)
        #expect(RuntimeOptions.contextLength(nil, trained: 131_072) == 4096)
        #expect(RuntimeOptions.contextLength(8192, trained: 2048) == 8192)   // what was given, even past the trained context
        #expect(RuntimeOptions.contextLength(4, trained: 2048) == 16)
        #expect(RuntimeOptions.threads(nil) == allCores && RuntimeOptions.threads(3) == 3)
        let model = try LoadedModel(path: Self.tiny).model
        #expect(try RuntimeOptions(RuntimeSettings(contextLength: 4), for: model).contextLength == 16)
    }

    @Test(.enabled(if: RealModels.available("smollm2"), "needs the smollm2 model"))
    func aLongTrainedContextIsCappedAt4096() throws {
        let loaded = try RealModels.load("smollm2")
        #expect(loaded.model.config.contextLength > 4096)
        #expect(try RuntimeOptions(RuntimeSettings(), for: loaded).contextLength == 4096)
    }

    @Test func kvTypeIsCheckedAgainstTheModel() throws {
        let model = try ModelRegistry.load(GGUFFile(path: modelFixtures.appendingPathComponent("llama.f32.gguf").path))
        let error = #expect(throws: RuntimeOptionsError.self) { try RuntimeOptions(RuntimeSettings(kvType: .q8_0), for: model) }
        #expect(error?.description.contains("divisible by 32") == true, "\(String(describing: error))")
        #expect(try RuntimeOptions(RuntimeSettings(kvType: .f16), for: model).kvType == .f16)
    }

    @Test func aRAMBudgetNeedsTheLoadedModel() throws {
        var settings = RuntimeSettings()
        settings.ramBudgetBytes = 1 << 30
        let model = try LoadedModel(path: Self.tiny).model
        #expect(throws: RuntimeOptionsError.ramBudgetNeedsLoadedModel) { try RuntimeOptions(settings, for: model) }
    }

    @Test func aGivenKVBudgetOrDiskTierSharesThePool() throws {
        var settings = RuntimeSettings()
        settings.kvBudgetBytes = 1 << 20
        settings.kvDiskDirectory = "/nonexistent/kv"
        let o = try RuntimeOptions(settings, for: LoadedModel(path: Self.tiny).model)
        #expect(o.kvBudgetBytes == 1 << 20 && o.sharesKVPool)
        #expect(o.kvDisk == KVDiskSettings(directory: "/nonexistent/kv", budgetBytes: 20 << 30))
    }

    /// serve --parallel 4: the KV budget is four sequences', the placement under the RAM budget counts
    /// it, and the engine's pool is no larger.
    @Test func servedSequencesAreBudgetedAndPlaced() throws {
        let loaded = try LoadedModel(path: Self.tiny)   // its own shared pool, made here
        var settings = RuntimeSettings(threads: 1, contextLength: 4096)
        settings.sequences = 4
        settings.prefillChunk = 256
        settings.ramBudgetBytes = 64 << 30
        let o = try RuntimeOptions(settings, for: loaded)
        let one = loaded.kvBytes(contextLength: 4096, batch: 256)
        #expect(o.kvBudgetBytes == 4 * one)
        #expect(o.placement?.kvBytes == o.kvBudgetBytes)
        #expect(o.batch == 512 && o.prefillChunk == 256)
        let engine = try BatchEngine(loaded, options: o)
        defer { engine.shutdown() }
        #expect(engine.pool.bytes <= o.kvBudgetBytes && engine.pool.bytes > 3 * one)
        #expect(engine.parallel == 4 && engine.contextLength == 4096 && engine.prefillChunk == 256)

        // A chunk larger than the batch is cut to it; the rows hold it and a decode token of every sequence.
        settings.batch = 64
        settings.ramBudgetBytes = nil
        let small = try RuntimeOptions(settings, for: loaded.model)
        #expect(small.prefillChunk == 64 && small.batch == 68)
    }
}
