// Each command takes its runtime options through the one resolver and declares only those it uses:
// perplexity's -c/--ctx-size is its chunk size, plan takes --ram-budget, logits runs on all cores by
// default, and an option a command does not use is refused by name.

import Foundation
import Testing
import VulkanBackend

@Suite(.enabled(if: Binaries.dwarfstar != nil, "needs the dwarfstar binary (swift build)"))
struct RuntimeOptionsCLITests {
    let tiny = modelFixtures.appendingPathComponent("qwen2.f32.gguf").path
    let qwen3 = modelFixtures.appendingPathComponent("qwen3.f32.gguf").path
    let book = engineFixtures.appendingPathComponent("pride-and-prejudice.txt").path

    @Test func perplexityHonorsItsContextSize() throws {
        // Two chunks of 64 tokens, the second half of each scored: 2 × 31 tokens.
        let r = try runCLI(["perplexity", "-m", tiny, "-f", book, "-c", "64", "--chunks", "2", "-t", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("chunks of 64 tokens") && r.stderr.contains("2 chunks, 62 tokens scored"), "\(r.stderr)")
        #expect(r.stdout.contains("Final estimate: PPL = "))
        let long = try runCLI(["perplexity", "-m", tiny, "-f", book, "--ctx-size", "128", "--chunks", "1", "-t", "2"])
        #expect(long.status == 0 && long.stderr.contains("1 chunks, 63 tokens scored"), "\(long.stderr)")
        // One context option only.
        let shared = try runCLI(["perplexity", "-m", tiny, "-f", book, "--ctx", "64"])
        #expect(shared.status != 0 && shared.stderr.contains("Unknown option '--ctx'"), "\(shared.stderr)")
    }

    @Test func planTakesTheRAMBudgetOption() throws {
        let r = try runCLI(["plan", "-m", tiny, "--ram-budget", "1G", "-t", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("RAM budget 1024.0 MiB") && r.stdout.contains("KV 1.0 MiB") && r.stdout.contains("(1 threads)"), "\(r.stdout)")
        // Planned for serve: the KV of every parallel sequence, four times one's.
        let served = try runCLI(["plan", "-m", tiny, "--ram-budget", "1G", "-t", "1", "--parallel", "4"])
        #expect(served.status == 0 && served.stdout.contains("KV 4."), "\(served.stdout)\(served.stderr)")
        let old = try runCLI(["plan", "-m", tiny, "--ram", "1G"])
        #expect(old.status != 0 && old.stderr.contains("--ram-budget"), "\(old.stderr)")
        let both = try runCLI(["plan", "-m", tiny, "--ram-budget", "1G", "--ram", "1G"])
        #expect(both.status != 0 && both.stderr.contains("Unknown option '--ram'"), "\(both.stderr)")
    }

    /// perplexity --backend vulkan: an F32 model's products on the device give the CPU's perplexity (float
    /// sums in another order: equal to 1e-5).
    @Test(.enabled(if: (try? VulkanDevices.probe().get())?.isEmpty == false, "needs a Vulkan device (Mesa's lavapipe)"))
    func perplexityRunsOnTheVulkanBackend() throws {
        func estimate(_ backend: String) throws -> (String, CLIResult) {
            let r = try runCLI(["perplexity", "-m", tiny, "-f", book, "-c", "64", "--chunks", "2", "-t", "2", "--backend", backend])
            return (r.stdout.components(separatedBy: "Final estimate: ").last ?? "", r)
        }
        let (cpu, _) = try estimate("cpu"), (vulkan, run) = try estimate("vulkan")
        #expect(run.status == 0 && run.stderr.contains("backend: vulkan:0 "), "\(run.stderr)")
        func ppl(_ s: String) -> Double? { Double(s.dropFirst("PPL = ".count).prefix { $0 != " " }) }
        let a = try #require(ppl(cpu), "\(cpu)"), b = try #require(ppl(vulkan), "\(vulkan)")
        #expect(abs(a - b) <= 1e-5 * a, "cpu \(cpu) vulkan \(vulkan)")
    }

    /// With --gpu-budget, plan shows the GPU tier beside RAM and storage and adds it to the prediction.
    @Test func planShowsTheGPUTier() throws {
        let moe = modelFixtures.appendingPathComponent("qwen3moe.f32.gguf").path
        let r = try runCLI(["plan", "-m", moe, "--ram-budget", "1G", "-t", "1", "--gpu-budget", "64K", "--gpu-bandwidth", "100"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("GPU placement: ") && r.stdout.contains("(budget 0.1 MiB)") && r.stdout.contains("GPU: "), "\(r.stdout)")
        #expect(r.stdout.contains("GPU 100.0 GB/s (--gpu-bandwidth)") && r.stdout.contains("MiB from GPU memory, "), "\(r.stdout)")
        let without = try runCLI(["plan", "-m", moe, "--ram-budget", "1G", "-t", "1"])
        #expect(without.status == 0 && !without.stdout.contains("GPU"), "\(without.stdout)")
    }

    @Test func logitsRunsOnAllCoresByDefault() throws {
        let all = try runCLI(["logits", "-m", qwen3, "--tokens", "1,2,3"])
        #expect(all.status == 0 && all.stderr.contains("threads \(allCores)"), "\(all.stderr)")
        let one = try runCLI(["logits", "-m", qwen3, "--tokens", "1,2,3", "-t", "1"])
        #expect(one.status == 0 && one.stderr.contains("threads 1"), "\(one.stderr)")
        func logits(_ r: CLIResult) throws -> [Double] {
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            return (json["logits"] as! [[Double]]).flatMap { $0 }
        }
        let a = try logits(all), b = try logits(one)
        #expect(a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-4 })
    }

    @Test func optionsACommandDoesNotUseAreRefused() throws {
        let cases: [([String], String)] = [
            (["logits", "-m", qwen3, "--tokens", "1,2", "--ram-budget", "1G"], "--ram-budget"),
            (["logits", "-m", qwen3, "--tokens", "1,2", "--kv-budget", "1G"], "--kv-budget"),
            (["perplexity", "-m", tiny, "-f", book, "--kv-disk", "/tmp"], "--kv-disk"),
            (["perplexity", "-m", tiny, "-f", book, "--state-checkpoints", "2"], "--state-checkpoints"),
            (["bench", "-m", qwen3, "--ctx", "64"], "--ctx"),
            (["bench", "-m", qwen3, "--parse-special-in-content"], "--parse-special-in-content"),
            (["plan", "-m", tiny, "--ram-budget", "1G", "--kv-disk", "/tmp"], "--kv-disk"),
            (["run", "-m", tiny, "-p", "hi", "--parallel", "2"], "--parallel"),
        ]
        for (args, option) in cases {
            let r = try runCLI(args)
            #expect(r.status != 0 && r.stderr.contains("Unknown option '\(option)'"), "\(args.joined(separator: " ")): \(r.stderr)")
        }
    }
}
