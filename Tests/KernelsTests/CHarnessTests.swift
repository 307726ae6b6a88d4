// The C kernel harness (Scripts/ckernels-test): ~10,000 checks of every SIMD dot and GEMM kernel
// against the scalar reference over odd shapes, strides and extreme values, built from the same
// sources as the CKernels target. Skipped (loudly) where no C compiler or make is installed.

import Foundation
import Testing

@Suite struct CHarnessTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var toolsAvailable: Bool {
        ["make", "gcc"].allSatisfy { tool in
            ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").contains {
                FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)")
            } ?? false
        }
    }

    @Test(.enabled(if: toolsAvailable, "needs make and gcc"))
    func everyKernelAgainstScalarReference() throws {
        let build = FileManager.default.temporaryDirectory.appendingPathComponent("ckernels-\(UUID().uuidString.prefix(8))")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["make", "-s", "-C", Self.root.appendingPathComponent("Scripts/ckernels-test").path, "BUILD=\(build.path)"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        try? FileManager.default.removeItem(at: build)
        #expect(p.terminationStatus == 0, "\(text.suffix(4000))")
        #expect(text.contains(" 0 failures"), "\(text.suffix(2000))")
    }
}
