// Progress bars of long work (synth, long prompts; loading a model over 1 GiB, pulls' verification):
// on a terminal only (a pseudo-terminal via pexpect), nothing when standard error is a pipe.

import Foundation
import TestSupport
import Platform
import Testing

@Suite struct ProgressBarTests {
    @Test func barText() {
        let bytes = TerminalProgress.line(label: "load", done: 500_000_000, total: 2_000_000_000, unit: .bytes, seconds: 2, width: 8)
        #expect(bytes == "load [██······]  25%  500 MB/2.00 GB  250 MB/s  ETA 6s")
        let tokens = TerminalProgress.line(label: "prompt", done: 4096, total: 4096, unit: .tokens, seconds: 4, width: 4)
        #expect(tokens == "prompt [████] 100%  4096/4096 tokens  1024 t/s")
        #expect(TerminalProgress.line(label: "x", done: 0, total: 10, unit: .items, seconds: 0, width: 2) == "x [··]   0%  0/10")
    }

    @Test(.enabled(if: RealModels.available("smollm2") && Binaries.dwarfstar != nil && Binaries.hasPexpect,
                   "needs the real model smollm2, the dwarfstar binary and python3 pexpect"))
    func barsOnATerminalOnly() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("progress-\(UUID())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", engineFixtures.appendingPathComponent("progress_pty.py").path, Binaries.dwarfstar!,
                       RealModels.path("smollm2")!, work.path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: readToEnd(out.fileHandleForReading), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "progress checks failed:\n\(text.suffix(3000))")
        #expect(text.contains("PROGRESS-PTY-OK"))
    }
}
