// inspect, logits, perplexity: looking inside files and checking numbers against references.

import ArgumentParser
import Engine
import Foundation
import GGUF
import Models

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Metadata table, tensor list and totals per type of a GGUF file.")
    @Argument(help: "GGUF file (or known model name).") var file: String
    @Flag(name: .customLong("no-tensors"), help: "Only metadata.") var noTensors = false

    func run() throws {
        let g: GGUFFile
        do { g = try GGUFFile(path: try ModelStore.resolve(file)) } catch { throw fail(error) }
        print("file: \(g.path)")
        print("GGUF v\(g.version), \(g.metadata.count) metadata keys, \(g.tensors.count) tensors, alignment \(g.alignment), data at \(g.dataOffset), \(g.fileSize) bytes")
        print("")
        print("metadata:")
        let width = min(48, g.metadataKeys.map(\.count).max() ?? 0)
        for k in g.metadataKeys {
            let v = g.metadata[k]!
            let type = v.type == .array ? "[\(arrayType(v))]" : v.type.name
            print("  \(k.padding(toLength: max(width, k.count), withPad: " ", startingAt: 0))  \(type.padding(toLength: max(9, type.count), withPad: " ", startingAt: 0)) \(v.summary())")
        }
        if !noTensors {
            print("")
            print("tensors:")
            let nw = min(40, g.tensors.map(\.name.count).max() ?? 0)
            for t in g.tensors {
                let shape = t.dims.map(String.init).joined(separator: " x ")
                print("  \(t.name.padding(toLength: max(nw, t.name.count), withPad: " ", startingAt: 0))  \(t.type.name.padding(toLength: max(7, t.type.name.count), withPad: " ", startingAt: 0))  \(shape.padding(toLength: max(16, shape.count), withPad: " ", startingAt: 0))  \(t.byteCount) bytes")
            }
        }
        print("")
        print("totals per type:")
        var byType: [GGMLType: (count: Int, elements: Int, bytes: Int)] = [:]
        for t in g.tensors {
            var e = byType[t.type] ?? (0, 0, 0)
            e.count += 1; e.elements += t.elementCount; e.bytes += t.byteCount
            byType[t.type] = e
        }
        for (type, e) in byType.sorted(by: { $0.value.bytes > $1.value.bytes }) {
            let bpw = Double(e.bytes * 8) / Double(max(e.elements, 1))
            print(String(format: "  %-5@ %4d tensors %13d elements %12d bytes (%.2f MiB, %.2f bits/weight)",
                         type.name, e.count, e.elements, e.bytes, Double(e.bytes) / 1_048_576, bpw))
        }
        let total = g.tensors.reduce(0) { $0 + $1.byteCount }
        let elements = g.tensors.reduce(0) { $0 + $1.elementCount }
        print(String(format: "  total %d tensors, %d parameters, %.2f MiB", g.tensors.count, elements, Double(total) / 1_048_576))
        // The cache a sequence of this model needs (when this build runs the architecture).
        if let model = try? ModelRegistry.load(g) {
            print("")
            print("KV cache: \(model.kvFootprint(type: .f32)) (f32); \(model.kvFootprint(type: .f16)) (f16)")
        }
    }

    func arrayType(_ v: GGUFValue) -> String {
        if case .array(let t, let items) = v { return "\(t.name) × \(items.count)" }
        return ""
    }
}

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Teacher-forced logits at every position (JSON: tokens, logits[, greedy]).")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var context: ContextOption
    @OptionGroup var distributed: PipelineOptions
    @Option(help: "Comma-separated token ids.") var tokens: String
    @Option(help: "Also decode N tokens greedily after the input, through the KV cache.") var greedy: Int = 0
    @Option(name: .customLong("out"), help: "Write the JSON here instead of stdout.") var out: String?

    func run() throws {
        do {
            let ids = try tokens.split(separator: ",").map { s -> Int32 in
                guard let v = Int32(s.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("bad token id '\(s)'") }
                return v
            }
            guard !ids.isEmpty else { throw ValidationError("--tokens is empty") }
            let path = try ModelStore.resolveOrPull(modelOptions.model)
            let gguf = try GGUFFile(path: path)
            let model = try ModelRegistry.load(gguf, weightLayout: modelOptions.weightLayout(path: path, sequences: 1))
            try distributed.prepare(model, statistics: [])
            // The model alone (no tokenizer needed); the context defaults to what the tokens need.
            var settings = try runtimeSettings([modelOptions, context])
            settings.contextLength = settings.contextLength ?? (ids.count + greedy + 1)
            var runtime = try RuntimeOptions(settings, for: model)
            runtime.placeOnDevice(gguf: gguf, model: model)
            printErr(runtime.backend.line)
            if let gpu = runtime.gpuPlacement { printErr(gpu.description) }
            let state = runtime.inferenceState(model)
            printErr("logits: \(ids.count) tokens, context \(runtime.contextLength), threads \(runtime.threads)")
            try distributed.run(model: model, state: state) { try writeLogits(ids, model: model, state: state) }
        } catch let e as ValidationError {
            throw e
        } catch let e as ExitCode {
            throw e
        } catch {
            throw fail(error)
        }
    }

    /// The logits of `ids` and the greedy tokens after them, as JSON.
    func writeLogits(_ ids: [Int32], model: TransformerModel, state: InferenceState) throws {
        let v = model.vocabularySize
        let logits = try model.forward(ids, startPosition: 0, state: state, logits: .all)
        var json = "{\"tokens\":[" + ids.map(String.init).joined(separator: ",") + "],\"logits\":["
        for r in 0..<ids.count {
            if r > 0 { json += "," }
            json += "[" + (0..<v).map { formatFloat(logits[r * v + $0]) }.joined(separator: ",") + "]"
        }
        json += "]"
        if greedy > 0 {
            var last = Array(UnsafeBufferPointer(rebasing: logits[((ids.count - 1) * v)..<(ids.count * v)]))
            var out: [Int32] = []
            for _ in 0..<greedy {
                let next = Int32(last.indices.max { last[$0] < last[$1] }!)
                out.append(next)
                last = Array(try model.forward([next], startPosition: state.position, state: state, logits: .last))
            }
            json += ",\"greedy\":[" + out.map(String.init).joined(separator: ",") + "]"
        }
        json += "}\n"
        if let out { try json.write(toFile: out, atomically: true, encoding: .utf8) } else { writeOut(json) }
    }

    func formatFloat(_ f: Float) -> String {
        f.isFinite ? "\(f)" : "null"
    }
}

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "perplexity",
        abstract: "Perplexity of a text file (llama-perplexity's definition: second half of each chunk).")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var chunkSize: ChunkSizeOption
    @OptionGroup var ramBudget: RAMBudgetOption
    @OptionGroup var distributed: PipelineOptions
    @Option(name: [.short, .customLong("file")], help: "Text file.") var file: String
    @Option(help: "Maximum number of chunks (default: all).") var chunks: Int?

    func run() throws {
        do {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("cannot read \(file) as UTF-8 text")
            }
            // Each chunk is evaluated from an empty cache: no side-state snapshots are taken.
            let (loaded, runtime) = try modelOptions.loadResolved([chunkSize, ramBudget], distributed: distributed) { $0.stateCheckpoints = 0 }
            let session = try runtime.session(loaded)
            let c = runtime.contextLength
            printErr("perplexity: \(loaded.name), chunks of \(c) tokens, threads \(runtime.threads)")
            var scored = true
            try distributed.run(model: loaded.model, state: session.state) {
                let r = try Perplexity.run(session: session, text: text, contextSize: c, maxChunks: chunks) { i, ppl in
                    writeOut(String(format: "[%d]%.4f,", i, ppl))
                }
                writeOut("\n")
                scored = r.tokensScored > 0
                guard scored else { return }
                print(String(format: "Final estimate: PPL = %.4f +/- %.5f", r.perplexity, r.uncertainty))
                printErr(String(format: "%d chunks, %d tokens scored, %.1f s (%.1f tokens/s evaluated)", r.chunks.count, r.tokensScored,
                                r.seconds, Double(r.chunks.count * c) / max(r.seconds, 1e-9)))
                if let experts = expertStreamingSummary(loaded.model) { printErr(experts) }
            }
            if !scored {
                printErr("error: the text is shorter than one chunk of \(c) tokens")
                throw ExitCode(1)
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            throw fail(error)
        }
    }
}

/// perplexity's -c/--ctx-size (llama-perplexity's spelling): the chunk size, which is the context.
struct ChunkSizeOption: RuntimeOptionGroup {
    static let defaultChunkSize = 512

    @Option(name: [.short, .customLong("ctx-size")], help: "Chunk size in tokens, the context (default: 512).")
    var c: Int = ChunkSizeOption.defaultChunkSize

    func apply(to settings: inout RuntimeSettings) throws { settings.contextLength = c }

    func validate() throws {
        if c < RuntimeOptions.minimumContextLength {
            throw ValidationError("-c/--ctx-size must be at least \(RuntimeOptions.minimumContextLength)")
        }
    }
}
