// `dwarfstar serve`'s key options, end to end through the binary: an empty key is refused, the key can
// come from a file (so it does not show in `ps`), and serving off loopback without a key warns.

import Foundation
import TestSupport
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import VulkanBackend

@Suite(.enabled(if: Binaries.dwarfstar != nil, "needs the dwarfstar binary (swift build)"))
struct ServeCommandTests {
    let tiny = modelFixtures.appendingPathComponent("qwen2.f32.gguf").path

    func temporaryFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("key-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Starts `serve` with `args`; returns the process, its port and its stderr pipe.
    func start(_ args: [String]) throws -> (Process, Int, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binaries.dwarfstar!)
        p.arguments = ["serve", "-m", tiny, "--port", "0", "-t", "1"] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        var line = Data()
        while !line.contains(0x0A) {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty { break }
            line += byte
        }
        let text = String(decoding: line, as: UTF8.self)
        let port = text.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        return (p, port, err)
    }

    func stop(_ p: Process, _ err: Pipe) -> String {
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        return String(decoding: readToEnd(err.fileHandleForReading), as: UTF8.self)
    }

    @Test func emptyKeysAreRefused() throws {
        let empty = try runCLI(["serve", "-m", tiny, "--api-key", ""])
        #expect(empty.status != 0 && empty.stderr.contains("--api-key must not be empty"), "\(empty.stderr)")
        let file = try temporaryFile("\n")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let emptyFile = try runCLI(["serve", "-m", tiny, "--api-key-file", file])
        #expect(emptyFile.status != 0 && emptyFile.stderr.contains("holds no key"), "\(emptyFile.stderr)")
    }

    @Test func keyFromAFileIsRequired() async throws {
        let file = try temporaryFile("s3cret-key\n")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (p, port, err) = try start(["--api-key-file", file])
        defer { _ = stop(p, err) }
        #expect(port > 0)
        func status(_ key: String?) async throws -> Int {
            var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/models")!)
            if let key { r.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
            return (try await URLSession.shared.data(for: r).1 as! HTTPURLResponse).statusCode
        }
        #expect(try await status(nil) == 401)
        #expect(try await status("wrong") == 401)
        #expect(try await status("s3cret-key") == 200)
    }

    /// serve --backend vulkan: the batch engine's products on the device give the CPU's greedy completion.
    @Test(.enabled(if: (try? VulkanDevices.probe().get())?.isEmpty == false, "needs a Vulkan device (Mesa's lavapipe)"))
    func servesOnTheVulkanBackend() async throws {
        func complete(_ backend: String) async throws -> (text: String, log: String) {
            let (p, port, err) = try start(["--backend", backend, "--parallel", "2"])
            var text = ""
            do {
                var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/completions")!)
                r.httpMethod = "POST"
                r.setValue("application/json", forHTTPHeaderField: "Content-Type")
                r.httpBody = Data(#"{"prompt": "hello world", "max_tokens": 8, "temperature": 0}"#.utf8)
                let data = try await URLSession.shared.data(for: r).0
                let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
                text = ((json?["choices"] as? [[String: Any]])?.first?["text"] as? String) ?? "no text: \(String(decoding: data, as: UTF8.self))"
            }
            return (text, stop(p, err))
        }
        let cpu = try await complete("cpu"), vulkan = try await complete("vulkan")
        #expect(vulkan.log.contains("backend: vulkan:0 ") && vulkan.log.contains("GPU placement: "), "\(vulkan.log)")
        #expect(!cpu.text.hasPrefix("no text") && vulkan.text == cpu.text, "cpu \(cpu.text) vulkan \(vulkan.text)")
    }

    @Test func servingOffLoopbackWithoutAKeyWarns() throws {
        let (p, port, err) = try start(["--host", "0.0.0.0"])
        #expect(port > 0)
        #expect(stop(p, err).contains("WARNING: serving on 0.0.0.0 without an API key"))
    }

    /// The KV pool serve makes for --parallel sequences is what the placement under --ram-budget counts.
    @Test func parallelSequencesAreBudgetedWithinTheRAMBudget() throws {
        // At --ctx 262144 a sequence's KV is 128 MiB: one fits in 400M with the rest, four do not.
        let (p4, port4, err4) = try start(["--ctx", "262144", "--parallel", "4", "--ram-budget", "400M"])
        let refused = stop(p4, err4)
        #expect(port4 == 0 && refused.contains("--ram-budget 400 MiB is too small"), "\(refused)")
        let (p1, port1, err1) = try start(["--ctx", "262144", "--parallel", "1", "--ram-budget", "400M"])
        let one = stop(p1, err1)
        #expect(port1 > 0, "\(one)")
        // Within a budget that holds them: four sequences of 16 MiB placed, and the pool no larger.
        let (p, port, err) = try start(["--ctx", "32768", "--parallel", "4", "--ram-budget", "2G"])
        let log = stop(p, err)
        #expect(port > 0, "\(log)")
        /// The MiB after "KV " on the line starting with `prefix`.
        func kvMiB(_ prefix: String) -> Double? {
            let line = log.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init) ?? ""
            return line.components(separatedBy: "KV ").dropFirst().first.flatMap { Double($0.prefix { $0.isNumber || $0 == "." }) }
        }
        let placed = kvMiB("placement:") ?? 0, pool = kvMiB("dwarfstar: serving") ?? .infinity
        #expect(placed >= 64 && pool <= placed, "placement KV \(placed) MiB, pool \(pool) MiB: \(log)")
    }
}
