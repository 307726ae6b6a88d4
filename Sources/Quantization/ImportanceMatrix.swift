// Importance matrices in llama.cpp's two file formats, so that either tool uses the other's file:
// GGUF (general.type "imatrix"; per weight W[rows, cols] (× experts) the tensors "W.in_sum2" [cols,
// matrices] = Σ x² per input column over the calibration tokens and "W.counts" [1, matrices] = the
// tokens summed) and the legacy .dat (int32 entry count; per entry name, call count, values =
// mean x² × calls; then the chunk count and the dataset name).

import Foundation
import GGUF

public struct ImportanceMatrix: Sendable {
    public struct Entry: Sendable, Equatable {
        /// Σ x² per column, matrix after matrix ([matrices][cols]).
        public var sums: [Float]
        /// Tokens summed per matrix (one for a dense weight, one per expert for stacked experts).
        public var counts: [Float]
        public init(sums: [Float], counts: [Float]) { self.sums = sums; self.counts = counts }
    }

    public var entries: [String: Entry] = [:]
    public var datasets: [String] = []
    public var chunkCount = 0
    public var chunkSize = 0
    /// Read from a legacy .dat file (sums are then mean × calls and counts the call count).
    public var isLegacy = false

    public init() {}

    public enum Format: String, Sendable { case gguf, dat }

    /// Reads either format (GGUF by its magic).
    public init(path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw QuantizeError.badArgument("cannot read importance matrix \(path): \(error.localizedDescription)")
        }
        if data.starts(with: Array("GGUF".utf8)) { try self.init(gguf: path) } else { try self.init(legacy: data, path: path) }
    }

    init(gguf path: String) throws {
        let file = try GGUFFile(path: path)
        datasets = file["imatrix.datasets"]?.stringArray ?? []
        chunkCount = file["imatrix.chunk_count"]?.int ?? 0
        chunkSize = file["imatrix.chunk_size"]?.int ?? 0
        guard file["imatrix.datasets"] != nil, file["imatrix.chunk_count"] != nil, file["imatrix.chunk_size"] != nil else {
            throw QuantizeError.badArgument("\(path): an imatrix GGUF needs imatrix.datasets, imatrix.chunk_count and imatrix.chunk_size")
        }
        var sums: [String: GGUFTensorInfo] = [:], counts: [String: GGUFTensorInfo] = [:]
        for t in file.tensors {
            if t.name.hasSuffix(".in_sum2") { sums[String(t.name.dropLast(8))] = t }
            else if t.name.hasSuffix(".counts") { counts[String(t.name.dropLast(7))] = t }
        }
        for (name, s) in sums {
            guard let c = counts[name] else { throw QuantizeError.badArgument("\(path): \(name) has sums but no counts") }
            guard s.type == .f32, c.type == .f32, c.elementCount >= 1, s.elementCount % c.elementCount == 0 else {
                throw QuantizeError.badArgument("\(path): \(name): sums and counts must be F32, sums a multiple of counts")
            }
            func floats(_ t: GGUFTensorInfo) -> [Float] {
                Array(UnsafeBufferPointer(start: file.data(of: t).assumingMemoryBound(to: Float.self), count: t.elementCount))
            }
            entries[name] = Entry(sums: floats(s), counts: floats(c))
        }
        for name in counts.keys where sums[name] == nil { throw QuantizeError.badArgument("\(path): \(name) has counts but no sums") }
        guard !entries.isEmpty else { throw QuantizeError.badArgument("\(path): no importance data") }
    }

    init(legacy data: Data, path: String) throws {
        isLegacy = true
        var offset = 0
        func bad(_ what: String) -> QuantizeError { .badArgument("\(path): not an imatrix file (\(what) at byte \(offset))") }
        func int32() throws -> Int {
            guard offset + 4 <= data.count else { throw bad("truncated") }
            let v = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int32.self) }
            offset += 4
            return Int(Int32(littleEndian: v))
        }
        let n = try int32()
        guard n >= 1, n <= 1 << 20 else { throw bad("entry count \(n)") }
        for _ in 0..<n {
            let len = try int32()
            guard len >= 1, len <= 4096, offset + len <= data.count else { throw bad("name length \(len)") }
            guard let name = String(data: data[data.startIndex + offset ..< data.startIndex + offset + len], encoding: .utf8) else { throw bad("name") }
            offset += len
            let calls = try int32(), count = try int32()
            guard count >= 1, offset + 4 * count <= data.count else { throw bad("value count \(count)") }
            let values = data.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: offset + 4 * $0, as: Float.self) } }
            offset += 4 * count
            entries[name] = Entry(sums: values, counts: [Float(calls)])
        }
        if offset + 8 <= data.count {
            chunkCount = try int32()
            let len = try int32()
            if len > 0, offset + len <= data.count,
               let name = String(data: data[data.startIndex + offset ..< data.startIndex + offset + len], encoding: .utf8) {
                datasets = [name]
            }
        }
    }

    /// The importance vector llama-quantize passes for weight `name` with `matrices` × `cols` values:
    /// mean x² per column (a matrix that saw no token gets 1s); nil if the matrix has no entry.
    public func importance(for name: String, cols: Int, matrices: Int) throws -> [Float]? {
        guard let e = entries[name] else { return nil }
        guard e.sums.count == cols * matrices else { throw QuantizeError.importanceSize(tensor: name, got: e.sums.count, want: cols * matrices) }
        if isLegacy {
            let calls = e.counts.first ?? 0
            return calls > 0 ? e.sums.map { $0 / calls } : e.sums
        }
        let perMatrix = e.sums.count / e.counts.count
        return (0..<e.sums.count).map { i in
            let count = e.counts[i / perMatrix]
            return count > 0 ? e.sums[i] / count : 1
        }
    }

    /// Writes the GGUF format (entries sorted by name, as llama-imatrix does) or the legacy .dat.
    public func write(to path: String, format: Format) throws {
        switch format {
        case .gguf: try writeGGUF(path)
        case .dat: try writeLegacy(path)
        }
    }

    func writeGGUF(_ path: String) throws {
        var w = GGUFWriter()
        w.set("general.type", .string("imatrix"))
        w.set("imatrix.datasets", .array(.string, datasets.map { .string($0) }))
        w.set("imatrix.chunk_count", .uint32(UInt32(chunkCount)))
        w.set("imatrix.chunk_size", .uint32(UInt32(chunkSize)))
        for name in entries.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let e = entries[name]!
            let matrices = e.counts.count
            try w.addTensor(name: "\(name).in_sum2", dims: [e.sums.count / matrices, matrices], floats: e.sums)
            try w.addTensor(name: "\(name).counts", dims: [1, matrices], floats: e.counts)
        }
        try w.write(to: path)
    }

    func writeLegacy(_ path: String) throws {
        var out = Data()
        func int32(_ v: Int) { withUnsafeBytes(of: Int32(v).littleEndian) { out.append(contentsOf: $0) } }
        // Entries whose matrices all saw no token are left out (llama-imatrix does the same).
        let stored = entries.filter { $0.value.counts.contains { $0 > 0 } }.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        int32(stored.count)
        let chunk = max(chunkSize, 1)
        for name in stored {
            let e = entries[name]!
            int32(name.utf8.count)
            out.append(contentsOf: Array(name.utf8))
            let calls = (Int(e.counts.max() ?? 0) + chunk - 1) / chunk
            int32(calls)
            int32(e.sums.count)
            let perMatrix = e.sums.count / e.counts.count
            for i in 0..<e.sums.count {
                var count = e.counts[i / perMatrix], value = e.sums[i]
                if count == 0 { value = 1; count = 1 }
                withUnsafeBytes(of: (value / count * Float(calls)).bitPattern.littleEndian) { out.append(contentsOf: $0) }
            }
        }
        int32(chunkCount)
        let dataset = datasets.last ?? ""
        int32(dataset.utf8.count)
        out.append(contentsOf: Array(dataset.utf8))
        do { try out.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw QuantizeError.badArgument("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
