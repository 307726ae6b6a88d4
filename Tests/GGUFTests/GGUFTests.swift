// GGUF reader/writer: round trip of every metadata type, and a clear error (never a crash) for every
// kind of malformed file.

import Foundation
import Testing
import GGUF
import Kernels

func tempPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("ds-\(UUID().uuidString.prefix(8))-\(name)").path
}

func writeBytes(_ bytes: [UInt8], _ name: String = "x.gguf") throws -> String {
    let p = tempPath(name)
    try Data(bytes).write(to: URL(fileURLWithPath: p))
    return p
}

/// A small valid file with every metadata type and two tensors.
func sampleWriter() throws -> GGUFWriter {
    var w = GGUFWriter()
    w.set("general.architecture", .string("llama"))
    w.set("u8", .uint8(200)); w.set("i8", .int8(-5)); w.set("u16", .uint16(60000)); w.set("i16", .int16(-30000))
    w.set("u32", .uint32(4_000_000_000)); w.set("i32", .int32(-2_000_000_000)); w.set("f32", .float32(1.5))
    w.set("bool", .bool(true)); w.set("str", .string("héllo ✓")); w.set("u64", .uint64(1 << 40))
    w.set("i64", .int64(-(1 << 40))); w.set("f64", .float64(-2.25))
    w.set("arr", .array(.int32, [.int32(1), .int32(-2), .int32(3)]))
    w.set("strs", .array(.string, [.string("a"), .string(""), .string("ccc")]))
    w.set("nested", .array(.array, [.array(.uint8, [.uint8(1), .uint8(2)]), .array(.uint8, [])]))
    try w.addTensor(name: "a", dims: [4, 2], floats: [1, 2, 3, 4, 5, 6, 7, 8])
    try w.addTensor(name: "b", dims: [32], type: .q8_0, data: [UInt8](repeating: 7, count: 34))
    return w
}

@Suite struct GGUFRoundTripTests {
    @Test func writeThenReadIsIdentical() throws {
        let w = try sampleWriter()
        let path = tempPath("rt.gguf")
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = try GGUFFile(path: path)
        #expect(g.version == 3)
        #expect(g.metadataKeys == w.metadata.map { $0.0 })
        for (k, v) in w.metadata { #expect(g[k] == v, "key \(k)") }
        #expect(g.tensors.map(\.name) == ["a", "b"])
        let a = g.tensor("a")!
        #expect(a.dims == [4, 2] && a.type == .f32 && a.byteCount == 32)
        let floats = Array(UnsafeBufferPointer(start: g.data(of: a).assumingMemoryBound(to: Float.self), count: 8))
        #expect(floats == [1, 2, 3, 4, 5, 6, 7, 8])
        let b = g.tensor("b")!
        #expect(b.type == .q8_0 && b.byteCount == 34 && b.offset % 32 == 0)
        #expect(g.data(of: b).load(fromByteOffset: 33, as: UInt8.self) == 7)
        // Serializing what was read gives the same bytes.
        var w2 = GGUFWriter()
        for k in g.metadataKeys { w2.set(k, g[k]!) }
        for t in g.tensors {
            try w2.addTensor(name: t.name, dims: t.dims, type: t.type,
                             data: Array(UnsafeRawBufferPointer(start: g.data(of: t), count: t.byteCount)))
        }
        #expect(w2.serialize() == w.serialize())
    }

    @Test func customAlignmentIsHonoured() throws {
        var w = try sampleWriter()
        w.set("general.alignment", .uint32(64))
        let path = tempPath("al.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try w.write(to: path)
        let g = try GGUFFile(path: path)
        #expect(g.alignment == 64 && g.dataOffset % 64 == 0 && g.tensors.allSatisfy { $0.offset % 64 == 0 })
    }

    /// Types whose layout the reader knows but the kernels do not compute (TQ1_0) still read (inspect
    /// works); loading a model with one is a clear error naming the tensor (Weights).
    @Test func readsTypesTheKernelsDoNotCompute() throws {
        var w = GGUFWriter()
        try w.addTensor(name: "iq", dims: [64, 2], type: .iq4_nl, data: [UInt8](repeating: 1, count: 4 * 18))
        try w.addTensor(name: "mx", dims: [32], type: .mxfp4, data: [UInt8](repeating: 2, count: 17))
        try w.addTensor(name: "tq", dims: [256], type: .tq1_0, data: [UInt8](repeating: 3, count: 54))
        let path = tempPath("iq.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try w.write(to: path)
        let g = try GGUFFile(path: path)
        #expect(g.tensor("iq")?.byteCount == 72 && g.tensor("mx")?.type == .mxfp4)
        #expect(g.tensor("tq")?.byteCount == 54)
        #expect(!Kernels.isSupported(.tq1_0) && Kernels.isSupported(.iq4_nl) && Kernels.isSupported(.q4_K))
    }

    @Test func readsVersion2() throws {
        var bytes = try sampleWriter().serialize()
        bytes[4] = 2
        let path = try writeBytes(bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = try GGUFFile(path: path)
        #expect(g.version == 2 && g.tensors.count == 2)
    }
}

@Suite struct GGUFMalformedTests {
    func expectError(_ bytes: [UInt8], field: String, message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = try writeBytes(bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try GGUFFile(path: path)
            Issue.record("no error for \(field)", sourceLocation: sourceLocation)
        } catch let e as GGUFError {
            #expect(e.file == path, sourceLocation: sourceLocation)
            #expect(e.field.contains(field), "field '\(e.field)' should name \(field)", sourceLocation: sourceLocation)
            #expect(e.message.contains(message), "message '\(e.message)'", sourceLocation: sourceLocation)
        }
    }

    /// Byte offset of the first tensor-info record ("a") in the sample.
    func tensorInfoOffset(_ bytes: [UInt8]) -> Int {
        let needle: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "a"), 2, 0, 0, 0]
        for i in 0..<(bytes.count - needle.count) where Array(bytes[i..<(i + needle.count)]) == needle { return i }
        return -1
    }

    @Test func badMagic() throws {
        var b = try sampleWriter().serialize(); b[0] = UInt8(ascii: "X")
        try expectError(b, field: "magic", message: "bad magic")
    }

    @Test func unsupportedVersion() throws {
        var b = try sampleWriter().serialize(); b[4] = 9
        try expectError(b, field: "version", message: "unsupported GGUF version 9")
    }

    @Test func bigEndianIsRefusedClearly() throws {
        var b = try sampleWriter().serialize(); b[4] = 0; b[7] = 3
        try expectError(b, field: "version", message: "big-endian")
    }

    @Test func emptyAndTinyFiles() throws {
        try expectError([], field: "header", message: "truncated")
        try expectError(Array("GGUF".utf8), field: "header", message: "truncated")
    }

    @Test func truncatedAtEveryPointIsAnErrorNeverACrash() throws {
        let full = try sampleWriter().serialize()
        let fullPath = try writeBytes(full)
        defer { try? FileManager.default.removeItem(atPath: fullPath) }
        let g = try GGUFFile(path: fullPath)
        let dataEnd = g.dataOffset + g.tensors.map { $0.offset + $0.byteCount }.max()!
        // Every cut inside header, metadata, tensor directory and tensor data (the last tensor's
        // trailing padding is not needed, so cuts there are valid files).
        for cut in 0..<dataEnd {
            let path = try writeBytes(Array(full[0..<cut]))
            defer { try? FileManager.default.removeItem(atPath: path) }
            do {
                _ = try GGUFFile(path: path)
                Issue.record("truncated at \(cut) of \(full.count) was accepted")
            } catch let e as GGUFError {
                #expect(e.message.contains("truncated") || e.message.contains("outside the file") || e.message.contains("exceeds"),
                        "cut \(cut): \(e)")
            }
        }
    }

    @Test func tensorDataOutsideTheFile() throws {
        var b = try sampleWriter().serialize()
        let off = tensorInfoOffset(b)
        // name(8+1) n_dims(4) ne(2×8) type(4) → offset field
        let offsetField = off + 9 + 4 + 16 + 4
        for i in 0..<8 { b[offsetField + i] = i == 2 ? 0x10 : 0 } // 1 MiB
        try expectError(b, field: "tensor a", message: "outside the file")
    }

    @Test func overlappingTensors() throws {
        var w = GGUFWriter()
        try w.addTensor(name: "a", dims: [16], floats: Array(repeating: 1, count: 16))
        try w.addTensor(name: "b", dims: [16], floats: Array(repeating: 2, count: 16))
        var b = w.serialize()
        // Point b's offset (64) at 32: inside a's 64 bytes.
        let needle: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "b"), 1, 0, 0, 0]
        var at = -1
        for i in 0..<(b.count - needle.count) where Array(b[i..<(i + needle.count)]) == needle { at = i; break }
        let offsetField = at + 9 + 4 + 8 + 4
        #expect(b[offsetField] == 64)
        b[offsetField] = 32
        try expectError(b, field: "tensor", message: "overlaps")
    }

    @Test func unknownTensorType() throws {
        var b = try sampleWriter().serialize()
        let typeField = tensorInfoOffset(b) + 9 + 4 + 16
        b[typeField] = 99
        try expectError(b, field: "tensor a.type", message: "unknown tensor type 99")
    }

    @Test func dimensionProductOverflow() throws {
        var b = try sampleWriter().serialize()
        let ne = tensorInfoOffset(b) + 9 + 4
        for i in 0..<8 { b[ne + i] = 0xff; b[ne + 8 + i] = 0xff }
        b[ne + 7] = 0x7f; b[ne + 15] = 0x7f
        try expectError(b, field: "tensor a.ne", message: "overflow")
    }

    @Test func absurdStringLength() throws {
        var b = try sampleWriter().serialize()
        // First metadata key length at offset 24.
        for i in 0..<8 { b[24 + i] = 0xff }
        try expectError(b, field: "metadata[0].key", message: "absurd string length")
    }

    @Test func absurdArrayLength() throws {
        var w = GGUFWriter()
        w.set("arr", .array(.uint32, [.uint32(1)]))
        var b = w.serialize()
        // key(8+3) type(4) elemtype(4) → count
        let countField = 24 + 11 + 4 + 4
        for i in 0..<8 { b[countField + i] = 0 }
        b[countField + 4] = 0x7f // 2^38 elements
        try expectError(b, field: "metadata arr", message: "absurd array length")
        b[countField + 4] = 0; b[countField + 2] = 0x10 // 1M elements of 4 bytes: more than the file holds
        try expectError(b, field: "metadata arr", message: "exceeds the remaining file size")
    }

    @Test func unknownMetadataType() throws {
        var w = GGUFWriter()
        w.set("k", .uint32(1))
        var b = w.serialize()
        b[24 + 9] = 77
        try expectError(b, field: "metadata k", message: "unknown value type 77")
    }

    @Test func badAlignment() throws {
        var w = try sampleWriter()
        w.set("general.alignment", .uint32(48))
        try expectError(w.serialize(), field: "general.alignment", message: "power of two")
    }

    /// Random byte flips in the header region: always a GGUFError or a valid file, never a crash.
    @Test func randomCorruptionNeverCrashes() throws {
        let full = try sampleWriter().serialize()
        var rng = SystemRandomNumberGenerator()
        let headerEnd = min(full.count, 600)
        for _ in 0..<400 {
            var b = full
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                b[Int.random(in: 0..<headerEnd, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            let path = try writeBytes(b)
            defer { try? FileManager.default.removeItem(atPath: path) }
            do { _ = try GGUFFile(path: path) } catch is GGUFError {} catch { Issue.record("unexpected error \(error)") }
        }
    }

    @Test func missingFileIsAnError() {
        #expect(throws: GGUFError.self) { try GGUFFile(path: "/nonexistent/x.gguf") }
    }
}
