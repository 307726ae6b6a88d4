// Seed files for the GGUF target: the fixture models cut down to a few KB (metadata arrays shortened,
// the first tensors kept with one block per row), plus one file with every metadata value type and one
// tensor of every tensor type. Written by `DS_FUZZ_WRITE_SEEDS=DIR FuzzGGUF`; the results are committed
// in Fuzz/Corpus/GGUF.

import FuzzSupport
import GGUF

enum GGUFSeeds {
    /// Fixtures (relative to the repository root), and how many entries of each metadata array to keep.
    static let fixtures: [(path: String, arrayCap: Int)] = [
        ("Tests/TokenizersTests/Fixtures/llama.f32.gguf", 600),   // the whole 512-token vocabulary and its merges
        ("Tests/ModelsTests/Fixtures/frontier/gemma4.f32.gguf", 300),
        ("Tests/ModelsTests/Fixtures/qwen2.f16.gguf", 24),
        ("Tests/ModelsTests/Fixtures/gemma3.f32.gguf", 24),
        ("Tests/ModelsTests/Fixtures/qwen3moe.f32.gguf", 24),
        ("Tests/ModelsTests/Fixtures/deepseekv3.f32.gguf", 24),
        ("Tests/ModelsTests/Fixtures/llama4.f32.gguf", 24),
        ("Tests/ModelsTests/Fixtures/glm4moe.f32.gguf", 24),
        ("Tests/ModelsTests/Fixtures/frontier/deepseek4.mxfp4.gguf", 24),
        ("Tests/ModelsTests/Fixtures/frontier/qwen35moe.f32.gguf", 24),
        ("Tests/ModelsTests/Fixtures/frontier/glm_dsa.f32.gguf", 24),
    ]

    static func write(to directory: String) throws {
        for fixture in fixtures {
            let bytes = try reduced(Fuzz.path(fixture.path), arrayCap: fixture.arrayCap, tensorCount: 6)
            let name = String(fixture.path.split(separator: "/").last!.dropLast(5))   // without ".gguf"
            Fuzz.check(Fuzz.writeFile(bytes, to: "\(directory)/\(name).gguf"), "cannot write seed \(name)")
            Fuzz.note("\(name).gguf: \(bytes.count) bytes")
        }
        let all = try everyType().serialize()
        Fuzz.check(Fuzz.writeFile(all, to: "\(directory)/every-type.gguf"), "cannot write seed every-type")
        Fuzz.note("every-type.gguf: \(all.count) bytes")
    }

    /// The fixture with metadata arrays cut to `arrayCap` entries and its first `tensorCount` tensors
    /// shrunk to one block per row and at most two rows per dimension (their leading bytes kept).
    static func reduced(_ path: String, arrayCap: Int, tensorCount: Int) throws -> [UInt8] {
        let g = try GGUFFile(path: path)
        var w = GGUFWriter(alignment: g.alignment)
        for key in g.metadataKeys {
            var value = g[key]!
            if case .array(let type, let items) = value, items.count > arrayCap { value = .array(type, Array(items.prefix(arrayCap))) }
            w.set(key, value)
        }
        for t in g.tensors.prefix(tensorCount) {
            var dims = t.dims
            dims[0] = t.type.blockSize
            for i in dims.indices.dropFirst() { dims[i] = min(dims[i], 2) }
            let count = t.type.byteCount(elements: dims.reduce(1, *))!
            var data = Array(UnsafeRawBufferPointer(start: g.data(of: t), count: min(count, t.byteCount)))
            data += [UInt8](repeating: 0, count: count - data.count)
            try w.addTensor(name: t.name, dims: dims, type: t.type, data: data)
        }
        return w.serialize()
    }

    /// Every metadata value type (nested arrays too) and one smallest tensor of every tensor type.
    static func everyType() throws -> GGUFWriter {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("general.alignment", .uint32(64))
        w.set("u8", .uint8(200)); w.set("i8", .int8(-5)); w.set("u16", .uint16(60000)); w.set("i16", .int16(-30000))
        w.set("u32", .uint32(4_000_000_000)); w.set("i32", .int32(-2_000_000_000)); w.set("f32", .float32(1.5))
        w.set("bool", .bool(true)); w.set("str", .string("héllo ✓")); w.set("u64", .uint64(1 << 40))
        w.set("i64", .int64(-(1 << 40))); w.set("f64", .float64(-2.25))
        w.set("strs", .array(.string, [.string("a"), .string(""), .string("ccc")]))
        w.set("nested", .array(.array, [.array(.uint8, [.uint8(1), .uint8(2)]), .array(.float32, [])]))
        for type in GGMLType.allCases {
            let bytes = type.byteCount(elements: type.blockSize)!
            try w.addTensor(name: "t.\(type.name)", dims: [type.blockSize, 1], type: type,
                            data: (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 37) })
        }
        return w
    }
}
