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
    @OptionGroup var modelOptions: SessionOptions
    @Option(help: "Address to bind (127.0.0.1: this machine only).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port, printed at start).") var port = 8080
    @OptionGroup var batching: BatchingOptions
    @OptionGroup var speculation: SpeculationFlags
    @OptionGroup var distributed: PipelineOptions
    @Option(name: .customLong("api-key"), help: "Require this key (Bearer or x-api-key); it shows in `ps`: prefer --api-key-file or $DWARFSTAR_API_KEY.") var apiKey: String?
    @Option(name: .customLong("api-key-file"), help: "Read the required key from this file (first line).") var apiKeyFile: String?
    @Option(name: .customLong("cors-origin"), help: "Let web pages of this origin call the API (repeatable; * for any). Others get 403.") var corsOrigins: [String] = []
    @Option(name: .customLong("allowed-host"), help: "Accept this Host name besides the bound address and loopback names (repeatable).") var allowedHosts: [String] = []
    @Option(name: .customLong("default-max-tokens"), help: "max_tokens of a request that does not say.") var defaultMaxTokens = 4096
    @Option(name: .customLong("queue"), help: "Requests that may wait for a slot before 503.") var queue = 64
    @Option(name: .customLong("max-body"), help: "Largest request body, e.g. 8M.") var maxBody = "8M"
    @Option(name: .customLong("alias"), help: "Model id announced by /v1/models (default: the -m name).") var alias: String?
    @Flag(name: .customLong("strict-model-name"), help: "Answer 404 to a request naming another model (default: any name gets the served model, as llama-server does).")
    var strictModelName = false
    @Flag(name: .customLong("no-webui"), help: "Do not serve the chat page at /.") var noWebUI = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        _ = try parseByteSize(maxBody)
        if let apiKey, apiKey.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ValidationError("--api-key must not be empty (leave it out to serve without a key)")
        }
        if apiKey != nil && apiKeyFile != nil { throw ValidationError("give --api-key or --api-key-file, not both") }
        guard defaultMaxTokens >= 1 else { throw ValidationError("--default-max-tokens must be at least 1") }
    }

    /// The key from --api-key, --api-key-file or $DWARFSTAR_API_KEY (nil: no key).
    func resolvedAPIKey() throws -> String? {
        if let apiKey { return apiKey }
        if let apiKeyFile {
            guard let text = try? String(contentsOfFile: apiKeyFile, encoding: .utf8) else {
                throw ValidationError("--api-key-file: cannot read \(apiKeyFile)")
            }
            let key = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard !key.isEmpty else { throw ValidationError("--api-key-file: \(apiKeyFile) holds no key") }
            return key
        }
        if let env = ProcessInfo.processInfo.environment["DWARFSTAR_API_KEY"] {
            guard !env.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ValidationError("DWARFSTAR_API_KEY is set but empty (unset it to serve without a key)")
            }
            return env
        }
        return nil
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    func run() throws {
        do {
            // The KV pool (and the placement under --ram-budget) covers --parallel sequences.
            let (loaded, runtime) = try modelOptions.model.loadResolved(modelOptions.runtimeGroups + [batching], distributed: distributed)
            let engine = try BatchEngine(loaded, options: runtime, maxQueue: queue, speculation: try speculation.options(for: loaded))
            try distributed.run(model: loaded.model, state: engine.batchState) { try serve(loaded, runtime, engine) }
        } catch {
            throw fail(error)
        }
    }

    /// Serves HTTP until the server stops (rank 0 of a pipeline, or the only process).
    func serve(_ loaded: LoadedModel, _ runtime: RuntimeOptions, _ engine: BatchEngine) throws {
        do {
            if speculation.asked && !engine.speculates {
                printErr("note: --spec is off: this model's decode rows are not exact in a batch, or the batch has no room for drafts (--batch)")
            }
            let pool = engine.pool, ctx = engine.contextLength
            let name = modelOptions.model.model
            var config = ServerConfiguration(modelID: alias ?? (name.hasSuffix(".gguf") ? loaded.name : name))
            config.host = host
            config.port = port
            config.apiKey = try resolvedAPIKey()
            config.corsOrigins = corsOrigins
            config.parseSpecialInContent = modelOptions.parseSpecialInContent
            config.strictModelName = strictModelName
            config.webUI = !noWebUI
            config.allowedHosts = allowedHosts
            config.limits.defaultMaxTokens = defaultMaxTokens
            if config.apiKey == nil && !Serve.isLoopback(host) {
                printErr("dwarfstar: WARNING: serving on \(host) without an API key: anyone who can reach this address can use the model. "
                         + "Set one with --api-key-file FILE or DWARFSTAR_API_KEY.")
            }
            config.maxBodyBytes = try parseByteSize(maxBody)
            let server = APIServer(engine: engine, configuration: config)
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var failure: Error?
            let model = config.modelID, host = self.host, parallel = runtime.sequences, webUI = config.webUI
            Task {
                do {
                    try await server.run { port in
                        printErr("dwarfstar: serving \(model) on http://\(host):\(port) (parallel \(parallel), context \(ctx), KV \(pool.bytes >> 20) MiB)")
                        print("listening on http://\(host):\(port)")
                        if webUI { printErr("dwarfstar: chat page at http://\(host):\(port)/ (--no-webui turns it off)") }
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
