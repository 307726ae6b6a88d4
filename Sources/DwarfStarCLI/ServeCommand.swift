// dwarfstar serve: the OpenAI- and Anthropic-compatible HTTP server over the batch engine.

import ArgumentParser
import Dispatch
import Engine
import Foundation
import KVCache
import Models
import Server

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the model over HTTP: OpenAI (/v1/chat/completions, /v1/completions) and Anthropic (/v1/messages) APIs.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Address to bind (127.0.0.1: this machine only).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port, printed at start).") var port = 8080
    @Option(help: "Requests generated at once (continuous batching).") var parallel = 4
    @Option(name: .customLong("api-key"), help: "Require this key (Bearer or x-api-key); default $DWARFSTAR_API_KEY.") var apiKey: String?
    @Option(name: .customLong("queue"), help: "Requests that may wait for a slot before 503.") var queue = 64
    @Option(name: .customLong("prefill-chunk"), help: "Most prompt tokens evaluated between two decode steps.") var prefillChunk = 256
    @Option(name: .customLong("max-body"), help: "Largest request body, e.g. 8M.") var maxBody = "8M"
    @Option(name: .customLong("alias"), help: "Model id announced by /v1/models (default: the -m name).") var alias: String?

    func validate() throws {
        guard (1...256).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 256") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        _ = try parseByteSize(maxBody)
    }

    func run() throws {
        do {
            let loaded = try modelOptions.load()
            let kvType = modelOptions.kvElementType
            if let problem = InferenceState.kvTypeProblem(kvType, loaded.model.config) { throw ValidationError(problem) }
            let ctx = modelOptions.contextSize ?? min(loaded.model.config.contextLength, 4096)
            let chunk = max(1, min(prefillChunk, modelOptions.batch))
            let budget = try modelOptions.kvBudget.map(parseByteSize) ?? parallel * loaded.kvBytes(contextLength: ctx, batch: chunk, type: kvType)
            let pool = try loaded.kvPool(budgetBytes: budget, type: kvType, diskDirectory: modelOptions.kvDisk,
                                         diskBudgetBytes: try parseByteSize(modelOptions.kvDiskBudget))
            pool.checkpointLimit = modelOptions.stateCheckpoints
            let engine = BatchEngine(loaded, parallel: parallel, contextLength: ctx, maxBatch: max(modelOptions.batch, chunk + parallel),
                                     prefillChunk: chunk, threads: modelOptions.threads, kvPool: pool, maxQueue: queue)
            var config = ServerConfiguration(modelID: alias ?? (modelOptions.model.hasSuffix(".gguf") ? loaded.name : modelOptions.model))
            config.host = host
            config.port = port
            config.apiKey = apiKey ?? ProcessInfo.processInfo.environment["DWARFSTAR_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
            config.maxBodyBytes = try parseByteSize(maxBody)
            let server = APIServer(engine: engine, configuration: config)
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var failure: Error?
            let model = config.modelID, host = self.host, parallel = self.parallel
            Task {
                do {
                    try await server.run { port in
                        printErr("dwarfstar: serving \(model) on http://\(host):\(port) (parallel \(parallel), context \(ctx), KV \(pool.bytes >> 20) MiB)")
                        print("listening on http://\(host):\(port)")
                        fflush(stdout)
                    }
                } catch { failure = error }
                done.signal()
            }
            done.wait()
            if let failure { throw failure }
        } catch {
            throw fail(error)
        }
    }
}
