// A real terminal session of `dwarfstar chat` (pseudo-terminal via pexpect): two turns, Ctrl-C
// mid-answer, the KV cache kept between turns.

import Foundation
import TestSupport
import Testing

enum Binaries {
    /// The dwarfstar executable built next to the test bundle.
    static var dwarfstar: String? {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("dwarfstar").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for config in ["release", "debug"] {
            let p = root.appendingPathComponent(".build/\(config)/dwarfstar").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    static var hasPexpect: Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import pexpect"]
        p.standardError = FileHandle.nullDevice
        do { try p.run(); p.waitUntilExit() } catch { return false }
        return p.terminationStatus == 0
    }
}

@Suite struct ChatTerminalTests {
    @Test(.enabled(if: RealModels.available("smollm2") && Binaries.dwarfstar != nil && Binaries.hasPexpect))
    func twoTurnsWithInterrupt() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", engineFixtures.appendingPathComponent("chat_pty.py").path, Binaries.dwarfstar!, RealModels.path("smollm2")!]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = readToEnd(out.fileHandleForReading)
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        #expect(p.terminationStatus == 0, "chat pty session failed:\n\(text.suffix(3000))")
        #expect(text.contains("CHAT-PTY-OK"))
    }
}
