// Counts in a GGUF header are untrusted: a tensor count, metadata count, array length or string length
// claiming up to 2^60 entries is refused with a clear error, at once, before anything is allocated by
// it; a count under the absolute limits is still checked against the bytes left in the file.

import Foundation
import Testing
import GGUF

@Suite struct GGUFHostileCountTests {
    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    func string(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }
    func header(tensors: UInt64, kv: UInt64) -> [UInt8] { Array("GGUF".utf8) + u32(3) + u64(tensors) + u64(kv) }

    /// Opens `bytes` as a GGUF: it must throw a GGUFError naming `field` and saying `message`, within a second.
    func expectRefused(_ bytes: [UInt8], field: String, message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ds-hostile-\(UUID()).gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let start = Date()
        do {
            _ = try GGUFFile(path: path)
            Issue.record("no error for \(field)", sourceLocation: sourceLocation)
        } catch let e as GGUFError {
            #expect(e.file == path && e.field.contains(field) && e.message.contains(message), "\(e)", sourceLocation: sourceLocation)
        }
        #expect(Date().timeIntervalSince(start) < 1, sourceLocation: sourceLocation)
    }

    @Test func countsOf2To60AreRefused() throws {
        let huge: UInt64 = 1 << 60
        try expectRefused(header(tensors: huge, kv: 0), field: "tensor_count", message: "absurd tensor count \(huge)")
        try expectRefused(header(tensors: 0, kv: huge), field: "kv_count", message: "absurd metadata count \(huge)")
        // One metadata entry: an array of 2^60 UINT8, then of 2^60 strings.
        for type in [UInt32(0), 8] {
            try expectRefused(header(tensors: 0, kv: 1) + string("a") + u32(9) + u32(type) + u64(huge) + [1, 2, 3],
                              field: "metadata a", message: "absurd array length \(huge)")
        }
        // A key, then a string value, then a tensor name of 2^60 bytes.
        try expectRefused(header(tensors: 0, kv: 1) + u64(huge) + [UInt8](repeating: 0, count: 40), field: "metadata[0].key",
                          message: "absurd string length")
        try expectRefused(header(tensors: 0, kv: 1) + string("s") + u32(8) + u64(huge) + Array("abc".utf8), field: "metadata s",
                          message: "absurd string length")
        try expectRefused(header(tensors: 1, kv: 0) + u64(huge) + [UInt8](repeating: 0, count: 40), field: "tensor[0].name",
                          message: "absurd string length")
    }

    /// Counts the absolute limits allow, in a file of a few dozen bytes: checked against the bytes left
    /// before any storage is reserved for them.
    @Test func countsBeyondTheFileAreRefusedBeforeAllocating() throws {
        let many = UInt64(GGUFFile.maxKVCount)
        try expectRefused(header(tensors: 0, kv: many) + [UInt8](repeating: 0, count: 40), field: "kv_count",
                          message: "metadata count \(many) exceeds the remaining file size")
        try expectRefused(header(tensors: UInt64(GGUFFile.maxTensorCount), kv: 0) + [UInt8](repeating: 0, count: 40), field: "tensor_count",
                          message: "tensor count \(GGUFFile.maxTensorCount) exceeds the remaining file size")
        // Metadata that leaves room for fewer tensors than claimed: checked again where they start.
        try expectRefused(header(tensors: 2, kv: 1) + string("pad") + u32(8) + string(String(repeating: "x", count: 40)) + [0, 0, 0, 0],
                          field: "tensor_count", message: "tensor count 2 exceeds the remaining file size")
        for (type, size) in [(UInt32(0), 1), (4, 4), (8, 8), (9, 12)] {
            let length = UInt64(GGUFFile.maxArrayLength - 1)
            try expectRefused(header(tensors: 0, kv: 1) + string("a") + u32(9) + u32(type) + u64(length) + [UInt8](repeating: 0, count: 64),
                              field: "metadata a", message: "array length \(length) exceeds the remaining file size (64 bytes hold at most \(64 / size)")
        }
    }
}

/// The writer replaces a file by one rename of a fresh temporary file: a symlink at the name is replaced
/// (its target untouched), and a failed write leaves no temporary file.
@Test func writerReplacesByRenameAndCleansUp() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-writer-\(UUID())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let target = dir.appendingPathComponent("target").path, path = dir.appendingPathComponent("m.gguf").path
    try Data("keep".utf8).write(to: URL(fileURLWithPath: target))
    try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    var w = GGUFWriter()
    w.set("general.architecture", .string("llama"))
    try w.addTensor(name: "a", dims: [4], floats: [1, 2, 3, 4])
    try w.write(to: path)
    #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == Data("keep".utf8))
    #expect(try GGUFFile(path: path).tensors.count == 1)
    // A tensor that produces the wrong number of bytes fails the write: the old file stays, nothing else.
    try w.addTensor(name: "b", dims: [4], type: .f32) { [1, 2] }
    #expect(throws: GGUFError.self) { try w.write(to: path) }
    #expect(try GGUFFile(path: path).tensors.count == 1)
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["m.gguf", "target"])
}
