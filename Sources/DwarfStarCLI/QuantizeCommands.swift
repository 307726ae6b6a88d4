// quantize, convert, imatrix: making smaller files (llama-quantize's mixes, or types chosen by
// measured sensitivity) and the importance matrices and float references they are made from.

import ArgumentParser
import Engine
import Foundation
import GGUF
import Models
import Quantization

/// A progress line per tensor: a bar on a terminal, nothing extra otherwise.
func tensorProgress(_ label: String) -> (Int, Int, TensorChoice) -> Void {
    let terminal = isatty(STDERR_FILENO) != 0
    return { done, total, c in
        guard terminal else { return }
        let width = 30, filled = width * done / max(total, 1)
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = "\r\(label) [\(bar)] \(done)/\(total) \(c.tensor.name) → \(c.type.name)"
        FileHandle.standardError.write(Data((line.padding(toLength: max(line.count, 100), withPad: " ", startingAt: 0)).utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a GGUF file: a named mix (Q4_K_M, …) or any tensor type, as llama-quantize writes it.",
        discussion: "Types and mixes: \(FileType.all.map(\.name).joined(separator: ", ")). With --imatrix the fits weigh each input column by its importance.")
    @Argument(help: "Input GGUF (F32/F16/BF16, or quantized with --allow-requantize).") var input: String
    @Argument(help: "Output GGUF.") var output: String
    @Argument(help: "Mix or type (Q4_K_M, Q8_0, IQ4_XS, F16, …); omit it with --target-size or --target-bpw.") var type: String?
    @Option(name: .customLong("target-size"), help: "Adaptive: the output file at most this big (e.g. 120M, 6G); types chosen by measured sensitivity.")
    var targetSize: String?
    @Option(name: .customLong("target-bpw"), help: "Adaptive: tensor data at most this many bits per weight.") var targetBPW: Double?
    @Option(help: "Adaptive: ram=16G[,ctx=4096][,kv=f16]: the weights, the KV of that context and the runtime within that RAM, every weight resident.")
    var fit: String?
    @Option(help: "Adaptive: calibration text for the sensitivity measurement (not the text you evaluate on).") var calibration: String?
    @Option(name: .customLong("calibration-chunks"), help: "Adaptive: calibration chunks (default 4).") var calibrationChunks = 4
    @Option(name: .customLong("calibration-ctx"), help: "Adaptive: tokens per calibration chunk (default 256).") var calibrationContext = 256
    @Option(name: .customLong("group-layers"), help: "Adaptive: layers that share a type per tensor role (default 1: every tensor measured alone).")
    var groupLayers = 1
    @Option(help: "Adaptive: sensitivity table (JSON) to reuse, or to save the measurement to.") var sensitivity: String?
    @Option(help: "Adaptive: candidate types to measure (comma-separated; default Q2_K,Q3_K,IQ4_XS,Q4_K,Q5_K,Q6_K,Q8_0,Q4_0,Q4_1,Q5_0,Q5_1,IQ4_NL and the codebook i-quants IQ1_S,IQ1_M,IQ2_XXS,IQ2_XS,IQ2_S,IQ3_XXS,IQ3_S; IQ1_S, IQ2_XXS, IQ2_XS need --imatrix).")
    var types: String?
    @Option(name: .customLong("exclude-types"), help: "Adaptive: types the allocation may not choose (comma-separated, e.g. Q4_1,Q5_1).")
    var excludeTypes: String?
    @Option(help: "Importance matrix (llama.cpp's GGUF or .dat format, e.g. from `dwarfstar imatrix`).") var imatrix: String?
    @Option(name: .customLong("tensor-type"), help: "REGEX=TYPE: tensors whose name matches get TYPE (repeatable; the first match wins).")
    var tensorTypes: [String] = []
    @Option(name: .customLong("output-tensor-type"), help: "Type of output.weight.") var outputTensorType: String?
    @Option(name: .customLong("token-embedding-type"), help: "Type of token_embd.weight.") var tokenEmbeddingType: String?
    @Flag(help: "The base type for every tensor (no mix rules).") var pure = false
    @Flag(name: .customLong("leave-output-tensor"), help: "Copy output.weight as it is.") var leaveOutputTensor = false
    @Flag(name: .customLong("allow-requantize"), help: "Allow a quantized input (it is dequantized first).") var allowRequantize = false
    @Flag(name: .customLong("dry-run"), help: "Print the types and sizes; write nothing.") var dryRun = false
    @Option(name: [.short, .customLong("threads")], help: "Threads (default: all cores).") var threads: Int?

    var adaptive: Bool { targetSize != nil || targetBPW != nil || fit != nil }

    func validate() throws {
        if adaptive == (type != nil) { throw ValidationError("give a mix or type, or one of --target-size / --target-bpw / --fit") }
        if [targetSize != nil, targetBPW != nil, fit != nil].filter({ $0 }).count > 1 {
            throw ValidationError("give one of --target-size, --target-bpw, --fit")
        }
        if let fit { do { _ = try FitTarget(fit, parseSize: parseByteSize) } catch { throw ValidationError("\(error)") } }
        if let targetSize { _ = try parseByteSize(targetSize) }
        if adaptive && calibration == nil && !(sensitivity.map { FileManager.default.fileExists(atPath: $0) } ?? false) {
            throw ValidationError("--target-size / --target-bpw measure sensitivity over a --calibration text (or reuse a --sensitivity table)")
        }
        if calibrationChunks < 1 || calibrationContext < 16 || groupLayers < 1 { throw ValidationError("bad calibration or group settings") }
    }

    func run() throws {
        do {
            if adaptive { return try runAdaptive() }
            let type = self.type!
            guard let mix = FileType.named(type) else {
                throw ValidationError("unknown type '\(type)'; one of: \(FileType.all.map(\.name).joined(separator: ", "))")
            }
            let file = try GGUFFile(path: try ModelStore.resolve(input))
            var mixOptions = MixOptions()
            mixOptions.tensorTypes = try tensorTypes.map(MixOptions.parseTensorType)
            mixOptions.outputTensorType = try outputTensorType.map(parseType)
            mixOptions.tokenEmbeddingType = try tokenEmbeddingType.map(parseType)
            mixOptions.pure = pure
            mixOptions.leaveOutputTensor = leaveOutputTensor
            var options = QuantizeOptions()
            options.threads = threads ?? options.threads
            options.allowRequantize = allowRequantize
            options.fileType = mix
            if let imatrix {
                options.importance = try ImportanceMatrix(path: imatrix)
                options.importanceFile = imatrix
                mixOptions.hasImportance = true
                printErr("imatrix: \(options.importance!.entries.count) entries from \(imatrix), \(options.importance!.chunkCount) chunks")
            }
            let choices = MixRules.choose(file, mix: mix, options: mixOptions)
            try ModelQuantizer.validate(file, choices, options)
            if dryRun {
                print(QuantizeSummary.table(choices))
                if let note = QuantizeSummary.fallbackNote(choices) { print(note) }
                return
            }
            let t0 = Date()
            try ModelQuantizer.write(file, choices, options: options, to: output, progress: tensorProgress("quantize"))
            print(QuantizeSummary.table(choices))
            if let note = QuantizeSummary.fallbackNote(choices) { print(note) }
            printErr(String(format: "wrote %@ (%@) in %.1f s", output, mix.name, Date().timeIntervalSince(t0)))
        } catch let e as ValidationError {
            throw e
        } catch {
            throw fail(error)
        }
    }

    func parseType(_ s: String) throws -> GGMLType {
        guard let t = GGMLType.named(s) else { throw ValidationError("unknown tensor type '\(s)'") }
        return t
    }

    /// --target-size / --target-bpw: sensitivity of every tensor group over the calibration text, then
    /// the allocation under the budget.
    func runAdaptive() throws {
        let path = try ModelStore.resolve(input)
        let loaded = try LoadedModel(path: path, writableWeights: true)
        // --fit's budget is measured now, as a run measures its placement: after loading, before a session.
        let fitBudget = try fit.map { try FitTarget($0, parseSize: parseByteSize).weightBudget(loaded, threads: threads ?? RuntimeOptions.threads(nil)) }
        var settings = RuntimeSettings(threads: threads, contextLength: calibrationContext)
        settings.stateCheckpoints = 0
        let runtime = try RuntimeOptions(settings, for: loaded)
        let session = try runtime.session(loaded)
        var sOptions = SensitivityOptions()
        sOptions.threads = runtime.threads
        sOptions.layersPerGroup = groupLayers
        if let types { sOptions.candidates = try types.split(separator: ",").map { try parseType(String($0)) } }
        var options = QuantizeOptions()
        options.threads = runtime.threads
        if let imatrix {
            sOptions.importance = try ImportanceMatrix(path: imatrix)
            options.importance = sOptions.importance
            options.importanceFile = imatrix
        }
        let text = try calibration.map { p -> String in
            guard let t = try? String(contentsOfFile: p, encoding: .utf8) else { throw ValidationError("cannot read \(p) as UTF-8 text") }
            return t
        } ?? ""
        let chunks = calibration == nil ? [] : try AdaptiveQuantization.calibrationChunks(session, text: text, size: calibrationContext, count: calibrationChunks)
        let t0 = Date()
        let table = try AdaptiveQuantization.table(loaded, session: session, chunks: chunks, options: sOptions, cache: sensitivity,
                                                   progress: sensitivityProgress())
        let target: SizeTarget
        if let budget = fitBudget {
            printErr(String(format: "fit: weights ≤ %.1f MiB (KV %.1f MiB, buffers and runtime %.1f MiB)", Double(budget.weights) / 1048576,
                            Double(budget.kv) / 1048576, Double(budget.other) / 1048576))
            target = .weightBytes(budget.weights)
        } else {
            target = try targetSize.map { .fileBytes(try parseByteSize($0)) } ?? .bitsPerWeight(targetBPW!)
        }
        let excluded = Set(try (excludeTypes ?? "").split(separator: ",").map { try parseType(String($0)) })
        let plan = try AdaptiveQuantization.plan(loaded.gguf, table: table, target: target, excluded: excluded)
        options.fileType = AdaptiveQuantization.fileType(plan.choices)
        printErr(String(format: "sensitivity: %d groups, %.1f s; budget %d bytes for them, %d used, estimated ΔKLD %.5f",
                        table.groups.count, Date().timeIntervalSince(t0), plan.budget, plan.allocation.bytes, plan.allocation.estimatedKLD))
        try ModelQuantizer.write(loaded.gguf, plan.choices, options: options, to: output, progress: tensorProgress("quantize"))
        print(QuantizeSummary.table(plan.choices, estimates: plan.estimates))
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        printErr("wrote \(output): \(size) bytes")
    }

    func sensitivityProgress() -> (Int, Int, String) -> Void {
        let terminal = isatty(STDERR_FILENO) != 0
        return { done, total, what in
            let line = "sensitivity [\(done)/\(total)] \(what)"
            FileHandle.standardError.write(Data((terminal ? "\r" + line.padding(toLength: max(line.count, 90), withPad: " ", startingAt: 0) : line + "\n").utf8))
            if terminal && done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        }
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dequantize a GGUF file to f16, bf16 or f32 (a full-precision reference from a quantized file).")
    @Argument(help: "Input GGUF (or known model name).") var input: String
    @Argument(help: "Output GGUF.") var output: String
    @Option(help: "f16, bf16 or f32.") var type: String = "f16"
    @Option(name: [.short, .customLong("threads")], help: "Threads (default: all cores).") var threads: Int?

    func run() throws {
        do {
            guard let mix = FileType.named(type), mix.isFloat else { throw ValidationError("--type must be f16, bf16 or f32") }
            let file = try GGUFFile(path: try ModelStore.resolveOrPull(input))
            var options = QuantizeOptions()
            options.threads = threads ?? options.threads
            options.allowRequantize = true
            options.fileType = mix
            let choices = MixRules.choose(file, mix: mix, options: MixOptions())
            try ModelQuantizer.write(file, choices, options: options, to: output, progress: tensorProgress("convert"))
            print(QuantizeSummary.table(choices))
        } catch let e as ValidationError {
            throw e
        } catch {
            throw fail(error)
        }
    }
}

struct IMatrix: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "imatrix",
        abstract: "Importance matrix of a model over a calibration text (llama-imatrix's file formats).")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var chunkSize: ChunkSizeOption
    @Option(name: [.short, .customLong("file")], help: "Calibration text.") var file: String
    @Option(name: [.short, .customLong("output")], help: "Output file (default: imatrix.gguf).") var output: String = "imatrix.gguf"
    @Option(name: .customLong("output-format"), help: "gguf (default) or dat (llama.cpp's legacy format).") var outputFormat: String?
    @Option(help: "Maximum number of chunks (default: all).") var chunks: Int?
    @Flag(name: .customLong("process-output"), help: "Also collect output.weight.") var processOutput = false

    func run() throws {
        do {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file) as UTF-8 text") }
            let format: ImportanceMatrix.Format
            switch outputFormat {
            case nil: format = output.hasSuffix(".dat") ? .dat : .gguf
            case let f?: guard let parsed = ImportanceMatrix.Format(rawValue: f) else { throw ValidationError("--output-format must be gguf or dat") }
                format = parsed
            }
            let (loaded, runtime) = try modelOptions.loadResolved([chunkSize]) { $0.stateCheckpoints = 0 }
            let session = try runtime.session(loaded)
            printErr("imatrix: \(loaded.name), chunks of \(runtime.contextLength) tokens, threads \(runtime.threads)")
            let (matrix, ppl) = try ImportanceRun.collect(session: session, file: loaded.gguf, text: text, dataset: file,
                                                          contextSize: runtime.contextLength, maxChunks: chunks, processOutput: processOutput) { i, p in
                writeOut(String(format: "[%d]%.4f,", i, p))
            }
            writeOut("\n")
            guard ppl.tokensScored > 0 else {
                printErr("error: the text is shorter than one chunk of \(runtime.contextLength) tokens")
                throw ExitCode(1)
            }
            try matrix.write(to: output, format: format)
            print(String(format: "Final estimate: PPL = %.4f +/- %.5f", ppl.perplexity, ppl.uncertainty))
            printErr("wrote \(output): \(matrix.entries.count) entries, \(matrix.chunkCount) chunks of \(matrix.chunkSize) tokens")
        } catch let e as ExitCode {
            throw e
        } catch let e as ValidationError {
            throw e
        } catch {
            throw fail(error)
        }
    }
}

struct KLD: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kld",
        abstract: "KL divergence of a model's next-token distributions against a reference model's (or a saved logits file).",
        discussion: """
            dwarfstar kld -m Q.gguf --reference F16.gguf -f TEXT     both models over the text
            dwarfstar kld -m F16.gguf -f TEXT --save-base ref.kld    save the reference (llama-perplexity --kl-divergence-base)
            dwarfstar kld -m Q.gguf --base ref.kld                   against a saved reference (ours or llama-perplexity's)
            """)
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var chunkSize: ChunkSizeOption
    @Option(name: [.short, .customLong("file")], help: "Evaluation text.") var file: String?
    @Option(help: "Reference model evaluated beside the model.") var reference: String?
    @Option(name: .customLong("base"), help: "Saved reference log-probabilities (llama-perplexity's --kl-divergence-base format).") var base: String?
    @Option(name: .customLong("save-base"), help: "Evaluate -m as the reference and save its log-probabilities here.") var saveBase: String?
    @Option(help: "Maximum number of chunks (default: all).") var chunks: Int?
    @Option(help: "Also write the report as JSON here.") var json: String?

    func validate() throws {
        let modes = [reference != nil, base != nil, saveBase != nil].filter { $0 }.count
        guard modes == 1 else { throw ValidationError("give exactly one of --reference, --base, --save-base") }
        if base == nil && file == nil { throw ValidationError("-f/--file is needed with --reference and --save-base") }
    }

    func run() throws {
        do {
            if let base { return try againstBase(base) }
            guard let file, let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read the text file") }
            let (loaded, runtime) = try modelOptions.loadResolved([chunkSize]) { $0.stateCheckpoints = 0 }
            let session = try runtime.session(loaded)
            let n = runtime.contextLength
            let (tokens, chunkStart) = Perplexity.tokenize(session, text)
            let count = min(tokens.count / n, chunks ?? Int.max)
            guard count >= 1 else { throw ValidationError("the text is shorter than one chunk of \(n) tokens") }
            if let saveBase {
                let writer = try LogitsBaseFile.Writer(path: saveBase, contextSize: n, vocab: loaded.model.vocabularySize, chunks: count,
                                                       tokens: tokens[0..<(count * n)])
                for c in 0..<count {
                    try writer.append(ReferenceChunk(reference: session, tokens: Perplexity.chunk(tokens, c, size: n, chunkStart: chunkStart)))
                    writeOut("[\(c + 1)/\(count)]")
                }
                try writer.close()
                writeOut("\n")
                printErr("wrote \(saveBase): \(count) chunks of \(n) tokens")
                return
            }
            let ref = try ModelOptions.parse(["-m", reference!, "-t", "\(runtime.threads)"]).loadResolved([chunkSize]) { $0.stateCheckpoints = 0 }
            let refSession = try ref.1.session(ref.0)
            guard ref.0.model.vocabularySize == loaded.model.vocabularySize else {
                throw ValidationError("the reference's vocabulary (\(ref.0.model.vocabularySize)) differs from the model's (\(loaded.model.vocabularySize))")
            }
            var stats = KLDStatistics()
            for c in 0..<count {
                let chunk = try ReferenceChunk(reference: refSession, tokens: Perplexity.chunk(tokens, c, size: n, chunkStart: chunkStart))
                try stats.add(chunk, session: session)
                writeOut(String(format: "[%d]%.5f,", c + 1, stats.meanKLD))
            }
            try finish(stats)
        } catch let e as ValidationError {
            throw e
        } catch {
            throw fail(error)
        }
    }

    func againstBase(_ path: String) throws {
        let reader = try LogitsBaseFile.Reader(path: path)
        let (loaded, runtime) = try modelOptions.loadResolved([chunkSize]) {
            $0.stateCheckpoints = 0
            $0.contextLength = reader.contextSize
        }
        guard loaded.model.vocabularySize == reader.vocab else {
            throw ValidationError("\(path) was made over a vocabulary of \(reader.vocab); the model has \(loaded.model.vocabularySize)")
        }
        let session = try runtime.session(loaded)
        let chunkStart = Perplexity.tokenize(session, "").chunkStart
        var stats = KLDStatistics()
        let count = min(reader.chunks, chunks ?? Int.max)
        for c in 0..<count {
            try stats.add(reader.chunk(c, chunkStart: chunkStart), session: session)
            writeOut(String(format: "[%d]%.5f,", c + 1, stats.meanKLD))
        }
        try finish(stats)
    }

    func finish(_ stats: KLDStatistics) throws {
        writeOut("\n")
        let report = stats.report()
        print(report.text)
        if let json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }
}
