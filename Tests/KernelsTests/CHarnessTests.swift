// The C kernel harness (Scripts/ckernels-test): ~10,000 checks of every SIMD dot and GEMM kernel
// against the scalar reference over odd shapes, strides and extreme values, built from the same
// sources as the CKernels target. Skipped (loudly) where no C compiler or make is installed.

import Foundation
import TestSupport
import Testing

@Suite struct CHarnessTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func installed(_ tools: [String]) -> Bool {
        tools.allSatisfy { tool in
            ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").contains {
                FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)")
            } ?? false
        }
    }
    static var toolsAvailable: Bool { installed(["make", "gcc"]) }
    static var arm64ToolsAvailable: Bool { installed(["make", "aarch64-linux-gnu-gcc", "qemu-aarch64"]) }

    @Test(.enabled(if: toolsAvailable, "needs make and gcc"))
    func everyKernelAgainstScalarReference() throws {
        try runHarness(target: "test")
    }

    /// The NEON kernels (dot, multi-row) against the scalar reference, cross-built for AArch64 and run
    /// under qemu-aarch64 (.ci/run installs both).
    @Test(.enabled(if: arm64ToolsAvailable, "needs make, aarch64-linux-gnu-gcc and qemu-aarch64 (Debian: gcc-aarch64-linux-gnu qemu-user)"))
    func neonKernelsUnderQemu() throws {
        try runHarness(target: "arm64")
    }

    func runHarness(target: String) throws {
        let build = FileManager.default.temporaryDirectory.appendingPathComponent("ckernels-\(UUID().uuidString.prefix(8))")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["make", "-s", "-C", Self.root.appendingPathComponent("Scripts/ckernels-test").path, "BUILD=\(build.path)", target]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: readToEnd(out.fileHandleForReading), as: UTF8.self)
        p.waitUntilExit()
        try? FileManager.default.removeItem(at: build)
        #expect(p.terminationStatus == 0, "\(text.suffix(4000))")
        #expect(text.contains(" 0 failures"), "\(text.suffix(2000))")
        if target == "arm64" { #expect(text.contains("checked for: scalar neon"), "the NEON kernels ran: \(text.suffix(2000))") }
    }
}
