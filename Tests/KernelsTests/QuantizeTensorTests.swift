// Whole-tensor quantization against tensors quantized by ggml itself (Fixtures/quant/tensor, made by
// `make -C Scripts/ckernels-test oracle-fixtures GGML=…`): 5 rows of 512 values (normal, outliers,
// heavy tails, constant runs, zero sub- and super-blocks), with no importance vector and with one
// (zeros included), byte for byte. IQ2_XXS, IQ2_XS and IQ1_S have no quantizer without importance.

import Foundation
import Testing
import GGUF
import Kernels

@Suite struct QuantizeTensorTests {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_nl, .iq4_xs,
                                    .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m]
    static let importanceOnly: Set<GGMLType> = [.iq2_xxs, .iq2_xs, .iq1_s]
    static let cases: [(GGMLType, Bool)] = types.flatMap { t in importanceOnly.contains(t) ? [(t, true)] : [(t, false), (t, true)] }
    static let rows = 5, cols = 512

    static func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: quantFixtures.appendingPathComponent("tensor").appendingPathComponent(name))
    }

    static func floats(_ name: String) throws -> [Float] {
        try fixture(name).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    @Test(arguments: cases)
    func bytesEqualGGML(type: GGMLType, weighted: Bool) throws {
        let x = try Self.floats("input.f32")
        let importance = try Self.floats("importance.f32")
        #expect(x.count == Self.rows * Self.cols && importance.count == Self.cols)
        let expected = [UInt8](try Self.fixture("\(type.name).\(weighted ? "weighted" : "plain").bin"))
        var got = [UInt8](repeating: 0xEE, count: Self.rows * type.byteCount(elements: Self.cols)!)
        let ok = got.withUnsafeMutableBytes { dst in
            importance.withUnsafeBufferPointer { qw in
                Kernels.quantize(type, x, rows: Self.rows, cols: Self.cols, importance: weighted ? qw.baseAddress : nil, into: dst.baseAddress!)
            }
        }
        #expect(ok)
        let firstDiff = zip(got, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(got == expected, "\(type.name) \(weighted ? "with" : "without") importance: first differing byte \(firstDiff ?? -1)")
    }

    @Test func importanceOnlyTypesRefuseWithoutIt() throws {
        let x = try Self.floats("input.f32")
        for type in Self.importanceOnly {
            #expect(Kernels.needsImportance(type), "\(type.name)")
            var q = [UInt8](repeating: 0xEE, count: Self.rows * type.byteCount(elements: Self.cols)!)
            let ok = q.withUnsafeMutableBytes { Kernels.quantize(type, x, rows: Self.rows, cols: Self.cols, importance: nil, into: $0.baseAddress!) }
            #expect(!ok && q.allSatisfy { $0 == 0xEE }, "\(type.name) quantized without importance")
        }
    }

    @Test func importanceChangesTheFit() throws {
        // The weighted fit spends precision where the importance is: its error, weighted by importance,
        // is below the plain quantizer's for every type that takes weights, on the first four rows (the
        // fifth, half zeros, is there for the byte comparison).
        let x = try Self.floats("input.f32"), importance = try Self.floats("importance.f32")
        for type in Self.types where type != .q8_0 && !Self.importanceOnly.contains(type) {
            var errors: [Double] = []
            for weighted in [false, true] {
                var q = [UInt8](repeating: 0, count: Self.rows * type.byteCount(elements: Self.cols)!)
                var back = [Float](repeating: 0, count: x.count)
                q.withUnsafeMutableBytes { dst in
                    importance.withUnsafeBufferPointer { qw in
                        _ = Kernels.quantize(type, x, rows: Self.rows, cols: Self.cols, importance: weighted ? qw.baseAddress : nil,
                                             into: dst.baseAddress!)
                    }
                }
                let rowBytes = type.byteCount(elements: Self.cols)!
                q.withUnsafeBytes { src in
                    for r in 0..<Self.rows {
                        back.withUnsafeMutableBufferPointer { b in
                            Kernels.dequantize(type, src.baseAddress! + r * rowBytes, into: b.baseAddress! + r * Self.cols, count: Self.cols)
                        }
                    }
                }
                var error = 0.0
                for i in 0..<(4 * Self.cols) {
                    let d = Double(x[i] - back[i])
                    error += Double(importance[i % Self.cols]) * d * d
                }
                errors.append(error)
            }
            #expect(errors[1] < errors[0], "\(type.name): weighted error \(errors[1]) not below plain \(errors[0])")
        }
    }
}
