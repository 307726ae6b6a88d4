// Every tensor type against vectors made by the `gguf` Python package (and ggml's reference
// quantizer for the K-quants): dequantization bit-exact, reference quantization byte-exact, and every
// SIMD dot product path against the scalar reference.

import Foundation
import Testing
import CKernels
import GGUF

let quantFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/quant")

func readFloats(_ name: String) throws -> [Float] {
    let d = try Data(contentsOf: quantFixtures.appendingPathComponent(name))
    return d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
}

@Suite struct QuantGoldenTests {
    static let types: [GGMLType] = [.f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .mxfp4]

    @Test(arguments: types)
    func dequantizeIsBitExact(type: GGMLType) throws {
        let bytes = try Data(contentsOf: quantFixtures.appendingPathComponent("\(type.name).bin"))
        let expected = try readFloats("\(type.name).f32")
        #expect(bytes.count == type.byteCount(elements: expected.count))
        var got = [Float](repeating: 0, count: expected.count)
        bytes.withUnsafeBytes { ds_dequantize_row(Int32(type.rawValue), $0.baseAddress!, &got, Int64(expected.count)) }
        let mismatches = (0..<expected.count).filter { got[$0].bitPattern != expected[$0].bitPattern }
        #expect(mismatches.isEmpty, "\(type): \(mismatches.count) values differ, first at \(mismatches.first ?? -1)")
    }

    @Test(arguments: types)
    func referenceQuantizerIsByteExact(type: GGMLType) throws {
        let input = try readFloats("input.f32")
        let expected = [UInt8](try Data(contentsOf: quantFixtures.appendingPathComponent("\(type.name).bin")))
        var got = [UInt8](repeating: 0, count: expected.count)
        ds_quantize_row_ref(Int32(type.rawValue), input, &got, Int64(input.count))
        #expect(got == expected, "\(type): quantized bytes differ")
    }

    @Test(arguments: types)
    func everySIMDPathMatchesScalar(type: GGMLType) throws {
        let input = try readFloats("input.f32")
        let n = input.count
        let w = [UInt8](try Data(contentsOf: quantFixtures.appendingPathComponent("\(type.name).bin")))
        let actType = ds_vec_dot_type(Int32(type.rawValue))
        var act = [UInt8](repeating: 0, count: Int(ds_row_bytes(actType, Int64(n))))
        let x = input.reversed().map { $0 * 0.5 + 0.1 } as [Float]
        ds_quantize_activation(actType, x, &act, Int64(n))
        let ref = ds_vec_dot_scalar(Int32(type.rawValue), Int64(n), w, act)
        var magnitude = 0.0
        var wf = [Float](repeating: 0, count: n)
        ds_dequantize_row(Int32(type.rawValue), w, &wf, Int64(n))
        for i in 0..<n { magnitude += Double(abs(wf[i] * x[i])) }
        var checked: [String] = []
        for isa in 0..<4 where ds_isa_available(Int32(isa)) != 0 && ds_isa_has_kernel(Int32(isa), Int32(type.rawValue)) != 0 {
            let got = ds_vec_dot_isa(Int32(isa), Int32(type.rawValue), Int64(n), w, act)
            let tol = 1e-4 * abs(Double(ref)) + 2e-3 * magnitude / Double(n).squareRoot() + 1e-5
            #expect(abs(Double(got - ref)) <= tol, "\(type) \(String(cString: ds_isa_name(Int32(isa)))): \(got) vs scalar \(ref)")
            checked.append(String(cString: ds_isa_name(Int32(isa))))
        }
        #expect(!checked.isEmpty)
    }

    @Test func fp16RoundTripIsExact() {
        var bad = 0
        for h in stride(from: 0, through: 0xFFFF, by: 1) where (h & 0x7C00) != 0x7C00 {
            if ds_fp32_to_fp16(ds_fp16_to_fp32(UInt16(h))) != UInt16(h) { bad += 1 }
        }
        #expect(bad == 0)
    }
}
