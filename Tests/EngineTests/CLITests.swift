// The dwarfstar binary end to end: logits JSON against the transformers golden file, inspect's
// tables, clear errors for bad input.

import Foundation
import TestSupport
import VulkanBackend
import Testing
import Engine
import GGUF
import Tokenizers

struct CLIResult { let status: Int32; let stdout: String; let stderr: String }

/// Runs the dwarfstar binary with `args` (in `directory` when given) and collects its output.
func runCLI(_ args: [String], in directory: String? = nil, environment: [String: String] = [:]) throws -> CLIResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Binaries.dwarfstar!)
    p.arguments = args
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // stderr read on its own thread, so a child filling one pipe never blocks on the other.
    var e = Data()
    let errDone = DispatchSemaphore(value: 0)
    Thread.detachNewThread { e = readToEnd(err.fileHandleForReading); errDone.signal() }
    let o = readToEnd(out.fileHandleForReading)
    errDone.wait()
    p.waitUntilExit()
    return CLIResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

let modelFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("ModelsTests/Fixtures")

@Suite(.enabled(if: Binaries.dwarfstar != nil)) struct CLITests {
    @Test func logitsJSONMatchesGolden() throws {
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: modelFixtures.appendingPathComponent("qwen3.golden.json"))) as! [String: Any]
        let ids = golden["token_ids"] as! [Int]
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("logits-\(UUID()).json").path
        let r = try runCLI(["logits", "-m", modelFixtures.appendingPathComponent("qwen3.f32.gguf").path,
                            "--tokens", ids.map(String.init).joined(separator: ","), "--greedy", "8", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: Any]
        #expect((json["tokens"] as! [Int]) == ids)
        let logits = json["logits"] as! [[Double]]
        let ref = golden["logits"] as! [[Double]]
        #expect(logits.count == ids.count && logits[0].count == 512)
        var worst = 0.0
        for (a, b) in zip(logits, ref) { for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)) } }
        #expect(worst < 1e-3)
        #expect((json["greedy"] as! [Int]) == ((golden["greedy"] as! [String: Any])["next_ids"] as! [Int]))
        // stdout variant
        let r2 = try runCLI(["logits", "-m", modelFixtures.appendingPathComponent("qwen3.f32.gguf").path, "--tokens", "1,2,3"])
        let j2 = try JSONSerialization.jsonObject(with: Data(r2.stdout.utf8)) as! [String: Any]
        #expect((j2["logits"] as! [[Double]]).count == 3 && j2["greedy"] == nil)
    }

    @Test func tokenizePrintsIdsAndPiecesOfTheFilesVocabulary() throws {
        let file = modelFixtures.appendingPathComponent("qwen3.f32.gguf").path
        let text = "Hello world, 12345 東京 <|im_start|>"
        let tokenizer = try Tokenizer(LoadedModel.vocabulary(from: GGUFFile(path: file)))
        let expected = tokenizer.encode(text)
        let ids = try runCLI(["tokenize", "-m", file, "--ids", text])
        #expect(ids.status == 0, "\(ids.stderr)")
        #expect(ids.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[" + expected.map(String.init).joined(separator: ", ") + "]")
        let pieces = try runCLI(["tokenize", "-m", file, "--pieces", text])
        let decoded = try JSONSerialization.jsonObject(with: Data(pieces.stdout.utf8)) as? [String]
        #expect(decoded?.count == expected.count)
        let lines = try runCLI(["tokenize", "-m", file, text])
        #expect(lines.stdout.split(separator: "\n").count == expected.count && lines.stdout.contains(" -> '"))
        // Special-token text as plain text: more tokens, none of them the control token.
        let plain = try runCLI(["tokenize", "-m", file, "--ids", "--no-parse-special", "<|im_start|>"])
        #expect(plain.status == 0 && !plain.stdout.contains("[\(tokenizer.tokenId(of: "<|im_start|>") ?? -1)]"))
        let catalog = try runCLI(["tokenize", "--list-pre-tokenizers", "--json"])
        let definitions = try JSONSerialization.jsonObject(with: Data(catalog.stdout.utf8)) as? [[String: Any]]
        #expect((definitions?.count ?? 0) > 25)
        #expect(definitions?.contains { ($0["names"] as? [String])?.contains("qwen35") == true } == true)
        let none = try runCLI(["tokenize", "-m", file])
        #expect(none.status != 0 && none.stderr.contains("give a text"))
    }

    /// Without any Vulkan driver, `devices` says why in one line (and the CPU is still listed).
    /// --backend vulkan on the device (lavapipe here): the load line names it and the logits match the golden;
    /// without a driver, vulkan is a one-line error and auto runs on the CPU saying why.
    @Test(.enabled(if: (try? VulkanDevices.probe().get())?.isEmpty == false, "needs a Vulkan device (Mesa's lavapipe)"))
    func backendOptionChoosesAndExplains() throws {
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: modelFixtures.appendingPathComponent("qwen3.golden.json"))) as! [String: Any]
        let ids = (golden["token_ids"] as! [Int]).map(String.init).joined(separator: ",")
        let model = modelFixtures.appendingPathComponent("qwen3.f32.gguf").path
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("logits-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let onDevice = try runCLI(["logits", "-m", model, "--tokens", ids, "--backend", "vulkan", "--gpu-budget", "64M", "--out", out])
        #expect(onDevice.status == 0, "\(onDevice.stderr)")
        #expect(onDevice.stderr.contains("backend: vulkan:0 ") && onDevice.stderr.contains("GPU budget 64 MiB"), "\(onDevice.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: Any]
        let logits = json["logits"] as! [[Double]], ref = golden["logits"] as! [[Double]]
        let worst = zip(logits, ref).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
        #expect(worst <= 1e-3, "max |Δlogit| \(worst)")

        let auto = try runCLI(["logits", "-m", model, "--tokens", ids])
        #expect(auto.status == 0 && auto.stderr.contains("backend: cpu (auto: no GPU; the Vulkan devices here run on the CPU"), "\(auto.stderr)")

        let noDriver = ["VK_ICD_FILENAMES": "/nonexistent/icd.json", "VK_DRIVER_FILES": "/nonexistent/icd.json"]
        let refused = try runCLI(["logits", "-m", model, "--tokens", ids, "--backend", "vulkan"], environment: noDriver)
        #expect(refused.status == 1 && refused.stderr.hasPrefix("error: --backend vulkan: ") && refused.stderr.split(separator: "\n").count == 1,
                "\(refused.stderr)")
        let fallback = try runCLI(["logits", "-m", model, "--tokens", ids, "--backend", "auto"], environment: noDriver)
        #expect(fallback.status == 0 && fallback.stderr.contains("backend: cpu (auto: no GPU; "), "\(fallback.stderr)")

        let bad = try runCLI(["logits", "-m", model, "--tokens", ids, "--backend", "cuda"])
        #expect(bad.status != 0 && bad.stderr.contains("--backend must be auto, cpu or vulkan"), "\(bad.stderr)")
        let missing = try runCLI(["logits", "-m", model, "--tokens", ids, "--backend", "vulkan", "--gpu-device", "7"])
        #expect(missing.status == 1 && missing.stderr.contains("--gpu-device 7: the machine has"), "\(missing.stderr)")
    }

    /// devices --check: every product kernel against the reference on the device, and its read speed.
    @Test(.enabled(if: (try? VulkanDevices.probe().get())?.isEmpty == false, "needs a Vulkan device (Mesa's lavapipe)"))
    func devicesCheckRunsEveryKernel() throws {
        let r = try runCLI(["devices", "--check"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        for type in ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ2_XXS", "IQ2_XS",
                     "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "IQ4_NL", "IQ4_XS", "MXFP4"] {
            #expect(r.stdout.contains("  \(type.padding(toLength: 7, withPad: " ", startingAt: 0)) ok "), "\(type): \(r.stdout)")
        }
        #expect(!r.stdout.contains("OFF") && r.stdout.contains("product read speed "), "\(r.stdout)")
    }

    @Test func devicesWithoutAVulkanDriverSayWhy() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binaries.dwarfstar!)
        p.arguments = ["devices"]
        p.environment = ProcessInfo.processInfo.environment.merging(["VK_ICD_FILENAMES": "/nonexistent/icd.json",
                                                                     "VK_DRIVER_FILES": "/nonexistent/icd.json"]) { $1 }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: readToEnd(out.fileHandleForReading), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let lines = text.split(separator: "\n")
        #expect(lines.first?.hasPrefix("cpu: ") == true)
        #expect(lines.count == 2 && lines[1].hasPrefix("vulkan: none: "), "\(text)")
    }

    @Test func inspectPrintsMetadataTensorsAndTotals() throws {
        let r = try runCLI(["inspect", modelFixtures.appendingPathComponent("gemma3.f16.gguf").path])
        #expect(r.status == 0)
        #expect(r.stdout.contains("general.architecture") && r.stdout.contains("\"gemma3\""))
        #expect(r.stdout.contains("blk.0.attn_q.weight") && r.stdout.contains("64 x 64"))
        #expect(r.stdout.contains("totals per type:") && r.stdout.contains("F16") && r.stdout.contains("F32"))
    }

    @Test func badInputGivesClearErrors() throws {
        let missing = try runCLI(["inspect", "/nonexistent/file.gguf"])
        #expect(missing.status != 0 && missing.stderr.contains("error:"))
        let notGGUF = FileManager.default.temporaryDirectory.appendingPathComponent("not-\(UUID()).gguf")
        try Data("hello, this is not a model file at all".utf8).write(to: notGGUF)
        defer { try? FileManager.default.removeItem(at: notGGUF) }
        let bad = try runCLI(["run", "-m", notGGUF.path, "-p", "hi"])
        #expect(bad.status == 1 && bad.stderr.contains("bad magic") && bad.stderr.contains(notGGUF.path))
        let badTokens = try runCLI(["logits", "-m", modelFixtures.appendingPathComponent("llama.f32.gguf").path, "--tokens", "1,99999"])
        #expect(badTokens.status != 0 && badTokens.stderr.contains("outside the vocabulary"))
        let empty = try runCLI(["run", "-m", modelFixtures.appendingPathComponent("llama.f32.gguf").path, "--raw", "-p", ""])
        #expect(empty.status == 1 && empty.stderr.contains("prompt is empty"), "\(empty.stderr)")
        let overflow = try runCLI(["run", "-m", modelFixtures.appendingPathComponent("llama.f32.gguf").path, "--raw",
                                   "-c", "16", "-p", String(repeating: "the quick brown fox ", count: 20)])
        #expect(overflow.status == 1 && overflow.stderr.contains("context overflow"), "\(overflow.stderr)")
        let unknown = try runCLI(["run", "-m", "no-such-model", "-p", "hi"])
        #expect(unknown.status != 0 && unknown.stderr.contains("known"))
    }

    /// Speculation flags end to end: a draft model of another vocabulary and --spec mtp on a model
    /// without the layer are refused with what is wrong; a working draft model and MTP layer print
    /// their counts and leave the greedy text as it is without them.
    @Test func speculationFlagsEndToEnd() throws {
        let llama = modelFixtures.appendingPathComponent("llama.f32.gguf").path
        let glm = modelFixtures.appendingPathComponent("glm4moe.f32.gguf").path
        let mismatch = try runCLI(["run", "-m", llama, "--raw", "-p", "hi", "-n", "4", "--draft-model", glm])
        #expect(mismatch.status != 0 && mismatch.stderr.contains("vocabulary"), "\(mismatch.stderr)")
        let noLayer = try runCLI(["run", "-m", llama, "--raw", "-p", "hi", "-n", "4", "--spec", "mtp"])
        #expect(noLayer.status != 0 && noLayer.stderr.contains("next-n"), "\(noLayer.stderr)")
        let plain = try runCLI(["run", "-m", llama, "--raw", "-p", "hello hello hello", "-n", "24", "--temp", "0"])
        let drafted = try runCLI(["run", "-m", llama, "--raw", "-p", "hello hello hello", "-n", "24", "--temp", "0",
                                  "--draft-model", modelFixtures.appendingPathComponent("llama.f16.gguf").path])
        #expect(plain.status == 0 && drafted.status == 0 && drafted.stdout == plain.stdout)
        #expect(drafted.stderr.contains("speculation (draft):"), "\(drafted.stderr)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-nextn-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let withLayer = dir.appendingPathComponent("glm-nextn.gguf").path
        let synth = try runCLI(["synth", "--append-nextn", glm, "-o", withLayer])
        #expect(synth.status == 0, "\(synth.stderr)")
        let glmPlain = try runCLI(["run", "-m", withLayer, "--raw", "-p", "hello hello hello", "-n", "24", "--temp", "0"])
        let glmMTP = try runCLI(["run", "-m", withLayer, "--raw", "-p", "hello hello hello", "-n", "24", "--temp", "0", "--spec", "mtp"])
        #expect(glmMTP.status == 0 && glmMTP.stdout == glmPlain.stdout && glmMTP.stderr.contains("speculation (mtp):"), "\(glmMTP.stderr)")
    }
}
