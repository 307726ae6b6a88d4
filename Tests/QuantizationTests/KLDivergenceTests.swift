// KL divergence statistics against hand-computed values, and the logits base file (llama-perplexity's
// --kl-divergence-base format) written, read back and refused when hostile.

import Foundation
import Quantization
import Testing

@Suite struct KLDivergenceTests {
    static func row(_ logits: [Float], token: Int) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: ReferenceLogProbs.rowLength(vocab: logits.count))
        logits.withUnsafeBufferPointer { l in
            out.withUnsafeMutableBufferPointer { ReferenceLogProbs.compress(l.baseAddress!, vocab: logits.count, token: token, into: $0.baseAddress!) }
        }
        return out
    }

    @Test func identicalDistributionsHaveZeroDivergence() {
        let logits: [Float] = [2, 1, 0.5, -1, -3]
        var s = KLDStatistics()
        let ref = Self.row(logits, token: 1)
        for _ in 0..<20 { logits.withUnsafeBufferPointer { l in ref.withUnsafeBufferPointer { s.add(l.baseAddress!, vocab: 5, reference: $0.baseAddress!, token: 1) } } }
        let r = s.report()
        #expect(abs(r.meanKLD) < 5e-5, "\(r.meanKLD)")   // the reference's uint16 rounding alone
        #expect(r.sameTop == 1, "\(r.sameTop)")
        #expect(abs(r.perplexityRatio - 1) < 1e-4, "\(r.perplexityRatio)")
    }

    @Test func divergenceMatchesTheDefinition() {
        let p: [Float] = [1.5, 0.2, -0.7, 0.1], q: [Float] = [0.3, 0.9, -0.2, -1.0]
        func logSoftmax(_ x: [Float]) -> [Double] {
            let m = Double(x.max()!), s = x.reduce(0.0) { $0 + exp(Double($1) - m) }
            return x.map { Double($0) - m - log(s) }
        }
        let lp = logSoftmax(p), lq = logSoftmax(q)
        let expected = zip(lp, lq).reduce(0.0) { $0 + exp($1.0) * ($1.0 - $1.1) }
        var s = KLDStatistics()
        let ref = Self.row(p, token: 2)
        q.withUnsafeBufferPointer { l in ref.withUnsafeBufferPointer { s.add(l.baseAddress!, vocab: 4, reference: $0.baseAddress!, token: 2) } }
        // The uint16 compression of the reference costs at most ~(range/65535) per log-probability.
        #expect(abs(s.meanKLD - expected) < 1e-4, "\(s.meanKLD) vs \(expected)")
        #expect(s.report().sameTop == 0)
    }

    @Test func hostileBaseFilesAreRefused() throws {
        let path = temporaryPath("base.kld")
        defer { unlink(path) }
        var d = Data("_logits_".utf8)
        for v: Int32 in [512, 49152, 1_000_000] { withUnsafeBytes(of: v) { d.append(contentsOf: $0) } }
        try d.write(to: URL(fileURLWithPath: path))
        #expect(throws: QuantizeError.self) { try LogitsBaseFile.Reader(path: path) }
        try Data("not a logits file at all".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: QuantizeError.self) { try LogitsBaseFile.Reader(path: path) }
    }
}
