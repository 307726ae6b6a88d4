// --fit ram=16G[,ctx=4096][,kv=f16]: a memory description turned into a byte budget for the quantized
// tensors, so that the output runs with every weight resident: RAM − the KV pool for the context (as
// RuntimeOptions sizes it) − the session's buffers and the process's own memory (measured as the
// placement measures them) − a slack of 1% (at least 4 MiB) − the tensors kept as they are. The placement `run` and `plan` make under
// --ram-budget then finds every weight resident (checked with `dwarfstar plan` on the output).

import Engine
import Foundation
import GGUF
import KVCache

public struct FitTarget: Sendable {
    public var ramBytes: Int
    public var contextLength: Int?
    public var kvType: KVType?

    /// Parses "ram=16G[,ctx=4096][,kv=f16]"; `parseSize` reads "16G".
    public init(_ text: String, parseSize: (String) throws -> Int) throws {
        var ram: Int?
        for part in text.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw QuantizeError.badArgument("--fit: expected key=value, got '\(part)'") }
            switch kv[0] {
            case "ram": ram = try parseSize(kv[1])
            case "ctx":
                guard let c = Int(kv[1]), c >= 16 else { throw QuantizeError.badArgument("--fit: ctx must be a number ≥ 16") }
                contextLength = c
            case "kv":
                guard let t = KVType(rawValue: kv[1]) else { throw QuantizeError.badArgument("--fit: kv must be f32, f16 or q8_0") }
                kvType = t
            case "vram":
                throw QuantizeError.unsupported("--fit vram=…: DwarfStar has no GPU backend yet; give ram= alone")
            default:
                throw QuantizeError.badArgument("--fit: unknown key '\(kv[0])' (ram, ctx, kv)")
            }
        }
        guard let ram else { throw QuantizeError.badArgument("--fit needs ram=SIZE") }
        ramBytes = ram
    }

    /// What the weights may take: RAM − KV − buffers − the process itself, each measured in the order and
    /// way RuntimeOptions and the placement measure them (call it right after loading, before a session
    /// exists, as a run would place its weights).
    public func weightBudget(_ loaded: LoadedModel, threads: Int) throws -> (weights: Int, kv: Int, other: Int) {
        var settings = RuntimeSettings(threads: threads, contextLength: contextLength, kvType: kvType)
        settings.stateCheckpoints = nil
        let runtime = try RuntimeOptions(settings, for: loaded.model)
        let scratch = loaded.sessionScratchBytes(batch: runtime.batch, threads: runtime.threads)
            + loaded.sideStateBudgetBytes(contextLength: runtime.contextLength, type: runtime.kvType, checkpoints: runtime.stateCheckpoints)
        // The process's resident size varies by a few MiB from run to run: keep that much slack.
        let other = LoadedModel.currentResidentBytes() + scratch + FitTarget.slack(ramBytes)
        return (ramBytes - runtime.kvBudgetBytes - other, runtime.kvBudgetBytes, other)
    }

    /// Slack for run-to-run differences in the measured process size: 1% of the RAM, at least 4 MiB.
    static func slack(_ ram: Int) -> Int { max(4 << 20, ram / 100) }
}
