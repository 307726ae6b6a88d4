// bench: llama-bench's pp/tg measurements (same field names in JSON), plus bytes/token and the share of
// measured memory bandwidth.

import ArgumentParser
import Engine
import Foundation
import GGUF
import KVCache
import Models

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prompt-processing and generation speed, like llama-bench (mean ± stddev over repetitions).")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var ramBudget: RAMBudgetOption
    @OptionGroup var checkpoints: CheckpointOption
    @Option(name: [.short, .customLong("n-prompt")], help: "Prompt tokens for the pp test (0 = skip).") var p: Int = 512
    @Option(name: [.short, .customLong("n-gen")], help: "Generated tokens for the tg test (0 = skip).") var n: Int = 128
    @Option(name: [.short, .customLong("repetitions")], help: "Repetitions of each test.") var r: Int = 5
    @Option(name: [.short, .customLong("output")], help: "md, csv or json.") var o: String = "md"
    @Flag(name: .customLong("membw"), help: "Only measure memory read bandwidth (1 and N threads).") var membwOnly = false
    @Flag(name: .customLong("no-membw"), help: "Skip the bandwidth probe.") var noMembw = false
    @Flag(name: .customLong("dispatch"), help: "Only measure the cost of one parallel dispatch (worker pool vs concurrentPerform).") var dispatchOnly = false
    @Option(name: .customLong("ttft"), help: "Only measure time to first token for a prompt of N shared-prefix tokens + 16, cold and with the prefix cached.") var ttft: Int?
    @OptionGroup var speculation: SpeculationFlags
    @OptionGroup var distributed: PipelineOptions
    @Option(name: .customLong("spec-prompts"), help: ArgumentHelp(
        "With --spec: the workload, a JSON Lines file of {\"kind\", \"prompt\"} (default: two built-in prompts). Each prompt is generated greedily (-n tokens) with and without speculation, alternated, -r times.",
        valueName: "file"))
    var specPrompts: String?

    func validate() throws {
        guard ["md", "csv", "json"].contains(o) else { throw ValidationError("-o must be md, csv or json") }
        if r < 1 { throw ValidationError("-r must be at least 1") }
        if p < 0 || n < 0 { throw ValidationError("-p and -n must be ≥ 0") }
        if let ttft, ttft < 1 { throw ValidationError("--ttft must be at least 1") }
    }

    func run() throws {
        let threads = RuntimeOptions.threads(modelOptions.threads)
        if (distributed.pipeline || distributed.expertsParallel) && (dispatchOnly || membwOnly || speculation.asked || ttft != nil) {
            throw ValidationError("--pipeline and --experts-parallel measure pp and tg only (not --dispatch, --membw, --ttft or speculation)")
        }
        if dispatchOnly {
            let cost = Benchmark.dispatchCost(threads: threads)
            print(String(format: "parallel dispatch, %d threads: worker pool %.2f µs, DispatchQueue.concurrentPerform %.2f µs", threads, cost.pool, cost.concurrentPerform))
            return
        }
        if membwOnly {
            for th in Set([1, threads]).sorted() {
                print(String(format: "memory read bandwidth, %d thread%@: %.1f GB/s", th, th == 1 ? "" : "s",
                             Benchmark.memoryReadBandwidth(threads: th)))
            }
            return
        }
        if speculation.asked {
            do { try benchSpeculation() } catch { throw fail(error) }
            return
        }
        do {
            // The context the tests fill; side-state snapshots are taken only by --ttft.
            let tests: (inout RuntimeSettings) -> Void = { settings in
                settings.contextLength = ttft.map { $0 + Benchmark.ttftSuffix } ?? (p + n)
                if ttft == nil { settings.stateCheckpoints = 0 }
            }
            let path: String, gguf: GGUFFile, m: TransformerModel, runtime: RuntimeOptions
            if ramBudget.ramBudget != nil {
                // Under a budget the placement needs the loaded model (as in run).
                let (loaded, options) = try modelOptions.loadResolved([ramBudget, checkpoints], distributed: distributed, adjust: tests)
                (path, gguf, m, runtime) = (loaded.path, loaded.gguf, loaded.model, options)
            } else {
                path = try ModelStore.resolveOrPull(modelOptions.model)
                gguf = try GGUFFile(path: path)
                m = try ModelRegistry.load(gguf, weightLayout: modelOptions.weightLayout(path: path, sequences: 1))
                try distributed.prepare(m, statistics: [])
                var settings = try runtimeSettings([modelOptions, checkpoints])
                tests(&settings)
                var resolved = try RuntimeOptions(settings, for: m)
                resolved.placeOnDevice(gguf: gguf, model: m)
                printErr(resolved.backend.line)
                if let gpu = resolved.gpuPlacement { printErr(gpu.description) }
                runtime = resolved
            }
            defer { if let experts = expertStreamingSummary(m) { printErr(experts) } }
            if let prefix = ttft {
                let r = try Benchmark.prefixTTFT(model: m, prefix: prefix, repetitions: self.r, options: runtime)
                print(String(format: "TTFT, %d-token shared prefix + 16 tokens, %d threads: cold %.3f s, warm %.4f s (%d positions reused): %.0f× sooner",
                             prefix, threads, r.cold, r.warm, r.reused, r.cold / max(r.warm, 1e-9)))
                return
            }
            var samples: [BenchSample] = []
            let kv = runtime.kvType
            try distributed.run(model: m, followerState: { runtime.inferenceState(m) }) { link in
                if p > 0 { samples.append(try Benchmark.run(model: m, promptTokens: p, generatedTokens: 0, repetitions: r, options: runtime, pipeline: link)) }
                if n > 0 { samples.append(try Benchmark.run(model: m, promptTokens: 0, generatedTokens: n, repetitions: r, options: runtime, pipeline: link)) }
            }
            let bandwidth = noMembw ? nil : Benchmark.memoryReadBandwidth(threads: threads)
            let size = gguf.tensors.reduce(0) { $0 + $1.byteCount }
            let params = gguf.tensors.reduce(0) { $0 + $1.elementCount }
            let name = "\(gguf.architecture ?? "?") \(gguf["general.size_label"]?.string ?? "") \(gguf["general.file_type"]?.int.map(fileTypeName) ?? "")"
            print(format(samples, modelName: name, path: path, size: size, params: params, bandwidth: bandwidth))
            printErr("KV cache (\(kv.rawValue)): \(m.kvFootprint(type: kv))")
        } catch {
            throw fail(error)
        }
    }

    /// --spec: tokens/s with and without speculation per kind of prompt.
    func benchSpeculation() throws {
        let workload = try specPrompts.map(SpeculationWorkload.load) ?? SpeculationWorkload.builtin
        let (loaded, runtime) = try modelOptions.loadResolved([ramBudget, checkpoints]) { settings in
            settings.contextLength = max(settings.contextLength ?? 0, 8192)
        }
        guard let options = try speculation.options(for: loaded) else { return }
        let rows = try SpeculationBenchmark.run(loaded, workload: workload, speculation: options, options: runtime,
                                                maxTokens: max(1, n), repetitions: r) { printErr($0) }
        print("| kind | prompts | plain tok/s | speculative tok/s | ratio (median of \(r)) | drafted | accepted | outputs identical |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for row in rows {
            print(String(format: "| %@ | %d | %.1f | %.1f | %.2f× | %d | %d | %@ |", row.kind, row.prompts, row.plainTokensPerSecond,
                         row.speculativeTokensPerSecond, row.ratio, row.drafted, row.accepted, row.identical ? "yes" : "NO"))
        }
        printErr("\(loaded.name), \(runtime.threads) threads, greedy, \(n) tokens per prompt, speculation: \(options.mode.rawValue)"
                 + (options.draftModel.map { " (draft model \($0.name))" } ?? "") + ", drafts of up to \(options.draftMax)")
        if rows.contains(where: { !$0.identical }) { throw ValidationError("speculative output differed from plain greedy decoding") }
    }

    func format(_ samples: [BenchSample], modelName: String, path: String, size: Int, params: Int, bandwidth: Double?) -> String {
        switch o {
        case "json":
            let items = samples.map { s -> String in
                let fields: [(String, String)] = [
                    ("model_filename", jsonString(path)), ("model_type", jsonString(modelName)),
                    ("model_size", "\(size)"), ("model_n_params", "\(params)"), ("backend", "\"CPU\""),
                    ("n_threads", "\(s.threads)"), ("n_batch", "\(modelOptions.batch)"), ("n_ubatch", "\(modelOptions.batch)"),
                    ("n_prompt", "\(s.promptTokens)"), ("n_gen", "\(s.generatedTokens)"),
                    ("avg_ts", "\(s.mean)"), ("stddev_ts", "\(s.stddev)"),
                    ("samples_ts", "[" + s.samplesTokensPerSecond.map { "\($0)" }.joined(separator: ", ") + "]"),
                    ("weight_bytes_per_token", "\(s.weightBytesPerToken)"),
                    ("membw_gbs", bandwidth.map { "\($0)" } ?? "null"),
                ]
                return "  {\n" + fields.map { "    \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n  }"
            }
            return "[\n" + items.joined(separator: ",\n") + "\n]"
        case "csv":
            var lines = ["model_type,model_size,model_n_params,n_threads,n_prompt,n_gen,avg_ts,stddev_ts,weight_bytes_per_token,membw_gbs,membw_pct"]
            for s in samples {
                let pct = s.generatedTokens > 0 ? bandwidth.map { String(format: "%.1f", percent(s, $0)) } ?? "" : ""
                lines.append("\"\(modelName)\",\(size),\(params),\(s.threads),\(s.promptTokens),\(s.generatedTokens),\(String(format: "%.3f", s.mean)),\(String(format: "%.3f", s.stddev)),\(s.weightBytesPerToken),\(bandwidth.map { String(format: "%.2f", $0) } ?? ""),\(pct)")
            }
            return lines.joined(separator: "\n")
        default:
            var lines = ["| model | size | params | threads | test | t/s | weight MB/token | % of membw |",
                         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for s in samples {
                let pct = s.generatedTokens > 0 ? bandwidth.map { String(format: "%.0f%% of %.1f GB/s", percent(s, $0), $0) } ?? "" : ""
                lines.append(String(format: "| %@ | %.2f MiB | %.2f M | %d | %@ | %.2f ± %.2f | %.1f | %@ |",
                                    modelName, Double(size) / 1_048_576, Double(params) / 1e6, s.threads, s.test,
                                    s.mean, s.stddev, Double(s.weightBytesPerToken) / 1e6, pct))
            }
            return lines.joined(separator: "\n")
        }
    }

    /// Decode: bytes of weights per token × tokens/s against the measured read bandwidth.
    func percent(_ s: BenchSample, _ bandwidth: Double) -> Double {
        Double(s.weightBytesPerToken) * s.mean / 1e9 / bandwidth * 100
    }

    func jsonString(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    func fileTypeName(_ t: Int) -> String {
        let names: [Int: String] = [0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
                                    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
                                    17: "Q5_K_M", 18: "Q6_K", 32: "BF16", 38: "MXFP4_MOE"]
        return names[t] ?? "type \(t)"
    }
}
