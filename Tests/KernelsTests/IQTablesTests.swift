// The i-quant codebooks in Sources/CKernels/ds_iq_tables.c are generated from the gguf package
// (Scripts/make-iq-tables.py). This checks the committed file is what the script writes today; the C
// harness ([9]) checks the dequantization built on them against the gguf package's, bit for bit.

import Foundation
import TestSupport
import Testing

@Suite struct IQTablesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func python(_ arguments: [String]) -> (status: Int32, output: String)? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        guard (try? p.run()) != nil else { return nil }
        let text = String(decoding: readToEnd(out.fileHandleForReading), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    static var pythonHasGGUF: Bool { python(["-c", "import gguf, numpy"])?.status == 0 }

    @Test(.enabled(if: pythonHasGGUF, "needs python3 with numpy and the gguf package (.ci/run installs them: pip install gguf)"))
    func tablesAreCurrent() throws {
        let script = Self.root.appendingPathComponent("Scripts/make-iq-tables.py").path
        let result = try #require(Self.python([script, "--check"]))
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("is current"), "\(result.output)")
    }
}
