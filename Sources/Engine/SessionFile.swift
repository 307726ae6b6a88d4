// Sessions on disk: the KV rows of every cached position, the token ids and the chat messages, so a
// conversation resumes without prefilling it again. A file is refused (never partly loaded) when it is
// not a session file, is truncated or corrupt (checksum), or was made with another model or KV layout.
//
// Layout (little-endian):
//   "DSKVSESS"  u32 version = 3  u32 header bytes  header (JSON, UTF-8)
//   per layer l: K rows [first_rows[l] ..< tokens] (k_row_floats elements of kv_type each), then its
//   V rows; first_rows[l] > 0 for sliding-window layers, whose earlier rows were dropped (version 1:
//   no first_rows, every layer from 0)
//   side_state_bytes of the state the model keeps beside the pages (DeepSeek V4's compressed cache,
//   Qwen3.5's recurrent state; SequenceState.swift), standing after the last token (version 3; older
//   files of those models have none and rebuild it by replaying the tokens)
//   SHA-256 of everything before it (32 bytes)
// The header names the model by a fingerprint (SHA-256 of the GGUF header, metadata and tensor table,
// plus the file size), its architecture, the KV type and row shape, and carries the token ids.

import Foundation
import Platform
import KVCache
import Models

public enum SessionFileError: Error, CustomStringConvertible, Equatable {
    case notASessionFile(String)
    case unsupportedVersion(String, UInt32)
    case truncated(String)
    case corrupt(String, String)
    case otherModel(String, expected: String, found: String)
    case tooLong(String, tokens: Int, context: Int)
    case badName(String)

    public var description: String {
        switch self {
        case .notASessionFile(let p): return "\(p): not a DwarfStar session file"
        case .unsupportedVersion(let p, let v): return "\(p): session file version \(v) is not supported (this build reads versions 1 to 3)"
        case .truncated(let p): return "\(p): session file is truncated"
        case .corrupt(let p, let why): return "\(p): session file is corrupt (\(why)); nothing was loaded"
        case .otherModel(let p, let e, let f): return "\(p): session was saved with another model or KV layout (\(f)); this one is \(e)"
        case .tooLong(let p, let n, let c): return "\(p): session holds \(n) tokens, more than this context (\(c)); use a larger --ctx"
        case .badName(let n): return "session name '\(n)' may only use letters, digits, '.', '_' and '-'"
        }
    }
}

struct SessionFileHeader: Codable {
    var model_fingerprint: String
    var model_file_size: Int
    var architecture: String
    var kv_type: String
    var layers: Int
    var k_row_floats: Int
    var v_row_floats: Int
    var tokens: [Int32]
    var messages: [[String: String]]
    /// Version 2: per layer, the first position saved (page-aligned to page_tokens).
    var first_rows: [Int]?
    var page_tokens: Int?
    /// Version 3: bytes of side state after the rows (0 or absent: none).
    var side_state_bytes: Int?

    func firstRow(_ layer: Int) -> Int { first_rows.flatMap { layer < $0.count ? $0[layer] : nil } ?? 0 }
}

extension LoadedModel {
    /// SHA-256 of the GGUF bytes before the tensor data (header, metadata, tensor table) and the file size.
    public var fingerprint: String {
        var h = SHA256()
        h.update(UnsafeRawBufferPointer(start: gguf.base, count: gguf.dataOffset))
        return "\(h.hexDigest())-\(gguf.fileSize)"
    }
}

extension Session {
    static let sessionMagic = Array("DSKVSESS".utf8)
    static let sessionVersion: UInt32 = 3

    /// Saves the cached positions, their token ids and `messages` to `path`, through a temporary file
    /// in the same folder (fsync'd, then renamed; removed on any failure): an interrupted or failed save
    /// leaves the old file intact.
    public func save(to path: String, messages: [ChatMessage] = []) throws {
        try AtomicFile.write(try encoded(messages: messages), to: path)
    }

    /// The session file's bytes for what the cache holds.
    func encoded(messages: [ChatMessage]) throws -> Data {
        let cache = state.cache, shape = cache.pool.shape, held = cache.committedTokens
        do { try cache.makeResident() } catch KVCacheError.pagesLost {
            // Pages damaged on the disk tier were dropped: evaluate those positions again first.
            _ = try evaluate(held)
            try cache.makeResident()
        }
        let n = cache.count
        let side = model.sideStateBytes(of: cache) ?? []
        var header = SessionFileHeader(
            model_fingerprint: loaded.fingerprint, model_file_size: loaded.gguf.fileSize,
            architecture: model.config.architecture, kv_type: shape.type.rawValue, layers: shape.layers,
            k_row_floats: shape.kRowFloats, v_row_floats: shape.vRowFloats, tokens: cache.committedTokens,
            messages: messages.map { ["role": $0.role, "content": $0.content] },
            first_rows: (0..<shape.layers).map { cache.firstRetainedPosition(layer: $0) }, page_tokens: cache.pool.pageTokens)
        header.side_state_bytes = side.count
        let json = try JSONEncoder().encode(header)
        var data = Data()
        data.append(contentsOf: Session.sessionMagic)
        withUnsafeBytes(of: Session.sessionVersion.littleEndian) { data.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        data.reserveCapacity(data.count + n * shape.bytesPerPosition + 32)
        let kBytes = shape.kRowBytes, vBytes = shape.vRowBytes
        for l in 0..<shape.layers {
            let first = header.firstRow(l)
            for p in first..<n { data.append(contentsOf: UnsafeRawBufferPointer(start: cache.kRow(l, p), count: kBytes)) }
            for p in first..<n where vBytes > 0 { data.append(contentsOf: UnsafeRawBufferPointer(start: cache.vRow(l, p), count: vBytes)) }
        }
        data.append(contentsOf: side)
        var h = SHA256()
        h.update(data)
        data.append(contentsOf: Session.hexBytes(h.hexDigest()))
        return data
    }

    /// Restores a saved session: the KV rows and tokens replace what this session holds. Returns the
    /// saved chat messages. Throws SessionFileError for a foreign, truncated or corrupt file, and then,
    /// as on any failure, the session holds exactly what it held before.
    @discardableResult
    public func load(from path: String) throws -> [ChatMessage] {
        // Read, not mapped: a file truncated by someone else while mapped would kill the process.
        let data = try AtomicFile.read(path)
        let saved = try decode(data, path: path)
        try install(saved)
        return saved.header.messages.compactMap { m in m["role"].flatMap { r in m["content"].map { ChatMessage(role: r, content: $0) } } }
    }

    /// A session file checked against this session's model and cache: what `install` writes.
    struct DecodedSession {
        var header: SessionFileHeader
        var data: Data
        /// Where the rows start, and per layer group the first position whose rows are saved.
        var rowsOffset: Int
        var groupFirst: [Int]
        var side: KVSideState?
    }

    /// Checks a session file's bytes completely (checksum, model, sizes, token ids, windows, side state)
    /// without changing anything.
    func decode(_ data: Data, path: String) throws -> DecodedSession {
        let fixed = Session.sessionMagic.count + 8
        guard data.count >= Session.sessionMagic.count, Array(data.prefix(Session.sessionMagic.count)) == Session.sessionMagic else {
            throw SessionFileError.notASessionFile(path)
        }
        guard data.count >= fixed + 32 else { throw SessionFileError.truncated(path) }
        func u32(_ at: Int) -> UInt32 { data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian } }
        let version = u32(Session.sessionMagic.count)
        guard (1...Session.sessionVersion).contains(version) else { throw SessionFileError.unsupportedVersion(path, version) }
        let headerBytes = Int(u32(Session.sessionMagic.count + 4))
        guard headerBytes <= data.count - fixed - 32 else { throw SessionFileError.truncated(path) }
        // Checksum first: nothing from a damaged file is interpreted further.
        var h = SHA256()
        data.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<(data.count - 32)])) }
        guard Array(data.suffix(32)) == Session.hexBytes(h.hexDigest()) else {
            // A short file fails here too; say which it is when the header tells the expected size.
            if let header = try? JSONDecoder().decode(SessionFileHeader.self, from: data.subdata(in: fixed..<(fixed + headerBytes))),
               data.count < fixed + headerBytes + Session.payloadBytes(header) + 32 {
                throw SessionFileError.truncated(path)
            }
            throw SessionFileError.corrupt(path, "checksum mismatch")
        }
        let header: SessionFileHeader
        do { header = try JSONDecoder().decode(SessionFileHeader.self, from: data.subdata(in: fixed..<(fixed + headerBytes))) } catch {
            throw SessionFileError.corrupt(path, "unreadable header")
        }
        let shape = state.cache.pool.shape
        let expected = "\(loaded.fingerprint), \(model.config.architecture), \(shape.type.rawValue) KV \(shape.layers)×\(shape.kRowFloats)+\(shape.vRowFloats)"
        let found = "\(header.model_fingerprint), \(header.architecture), \(header.kv_type) KV \(header.layers)×\(header.k_row_floats)+\(header.v_row_floats)"
        guard header.model_fingerprint == loaded.fingerprint, header.kv_type == shape.type.rawValue, header.layers == shape.layers,
              header.k_row_floats == shape.kRowFloats, header.v_row_floats == shape.vRowFloats else {
            throw SessionFileError.otherModel(path, expected: expected, found: found)
        }
        let n = header.tokens.count
        guard n <= contextLength else { throw SessionFileError.tooLong(path, tokens: n, context: contextLength) }
        guard data.count == fixed + headerBytes + Session.payloadBytes(header) + 32 else {
            throw SessionFileError.corrupt(path, "size does not match the header")
        }
        guard header.tokens.allSatisfy({ $0 >= 0 && Int($0) < model.vocabularySize }) else {
            throw SessionFileError.corrupt(path, "token id outside the vocabulary")
        }
        // Dropped rows: one start per layer group, page-aligned here, and every row a layer still
        // needs is in the file.
        let groups = state.cache.pool.groups, P = state.cache.pool.pageTokens
        var groupFirst = Array(repeating: 0, count: groups.count)
        guard header.first_rows == nil || header.first_rows?.count == shape.layers else {
            throw SessionFileError.corrupt(path, "first_rows does not list every layer")
        }
        for l in 0..<shape.layers {
            let f = header.firstRow(l), g = groups.group[l]
            guard f >= 0, f <= groups.retention[g].firstNeeded(at: n), groups.slot[l] == 0 || f == groupFirst[g] else {
                throw SessionFileError.corrupt(path, "layer \(l) lacks rows its attention window needs")
            }
            guard f % P == 0 else {
                throw SessionFileError.otherModel(path, expected: "\(expected), \(P)-position pages",
                                                  found: "\(found), \(header.page_tokens ?? 0)-position pages")
            }
            groupFirst[g] = f
        }
        var side: KVSideState?
        if let sideBytes = header.side_state_bytes, sideBytes > 0 {
            side = data.withUnsafeBytes { raw in
                model.sideState(from: UnsafeRawBufferPointer(rebasing: raw[(data.count - 32 - sideBytes)..<(data.count - 32)]),
                                position: n, kvType: shape.type)
            }
            guard side != nil else { throw SessionFileError.corrupt(path, "side state does not fit this model") }
        }
        return DecodedSession(header: header, data: data, rowsOffset: fixed + headerBytes, groupFirst: groupFirst, side: side)
    }

    /// Puts a decoded session in place of what the cache holds, or throws and leaves the cache exactly
    /// as it was. It is first written beside the current conversation (a fresh sequence of the same
    /// pool, taken over when complete); when the pool cannot hold both, the current conversation is
    /// kept as bytes in memory while the session is written in its place, and put back on failure.
    func install(_ saved: DecodedSession) throws {
        let cache = state.cache
        if cache.count == 0 {
            try write(saved, into: cache)   // a failure leaves it empty, as it was
            return
        }
        do {
            // Scoped: when it cannot be completed, all it took (side-state reservation included) goes
            // back before the second way is tried.
            let fresh = KVSequence(pool: cache.pool, maxPositions: cache.maxPositions)
            do {
                try write(saved, into: fresh)
                cache.replaceContents(with: fresh)
                return
            } catch KVCacheError.budgetExhausted {}
        }
        let current = try decode(try encoded(messages: []), path: "(the current conversation)")
        do { try write(saved, into: cache) } catch {
            try write(current, into: cache)
            throw error
        }
    }

    /// Writes a decoded session's rows, tokens and side state into `cache` (emptied first).
    private func write(_ saved: DecodedSession, into cache: KVSequence) throws {
        let shape = cache.pool.shape, header = saved.header, n = header.tokens.count
        cache.truncate(to: 0)
        cache.skipPages(below: saved.groupFirst)
        do { try cache.prepareWrite(start: 0, count: n) } catch {
            cache.truncate(to: 0)   // pages a partial preparation took go back
            throw error
        }
        let kBytes = shape.kRowBytes, vBytes = shape.vRowBytes
        saved.data.withUnsafeBytes { raw in
            var offset = saved.rowsOffset
            for l in 0..<shape.layers {
                let first = header.firstRow(l)
                for p in first..<n {
                    memcpy(cache.kRow(l, p), raw.baseAddress! + offset, kBytes)
                    cache.noteHostWrite(l, p)
                    offset += kBytes
                }
                for p in first..<n where vBytes > 0 {
                    memcpy(cache.vRow(l, p), raw.baseAddress! + offset, vBytes)
                    offset += vBytes
                }
            }
        }
        header.tokens.withUnsafeBufferPointer { cache.commit($0, start: 0) }
        cache.auxiliary = saved.side
    }

    /// Bytes after the header the header describes (a hostile header's absurd sizes give a size no
    /// file has, never an overflow).
    static func payloadBytes(_ h: SessionFileHeader) -> Int {
        let limit = 1 << 40
        guard (0...4096).contains(h.layers), (0...limit).contains(h.k_row_floats), (0...limit).contains(h.v_row_floats),
              (0...limit).contains(h.side_state_bytes ?? 0),
              (h.first_rows ?? []).allSatisfy({ (0...limit).contains($0) }) else { return limit }
        let type = KVType(rawValue: h.kv_type) ?? .f32
        let rows = (0..<h.layers).reduce(0) { $0 + max(0, h.tokens.count - h.firstRow($1)) }
        let (kv, overflow) = rows.multipliedReportingOverflow(by: type.bytes(h.k_row_floats) + type.bytes(h.v_row_floats))
        return overflow || kv > limit ? limit : kv + (h.side_state_bytes ?? 0)
    }

    static func hexBytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = hex.utf8.makeIterator()
        while let a = it.next(), let b = it.next() {
            func v(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : c - 48 }
            out.append(v(a) << 4 | v(b))
        }
        return out
    }

    /// Folder of named sessions: $DWARFSTAR_SESSIONS, else ~/.dwarfstar/sessions.
    public static var sessionsDirectory: URL {
        if let d = ProcessInfo.processInfo.environment["DWARFSTAR_SESSIONS"], !d.isEmpty { return URL(fileURLWithPath: d) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".dwarfstar/sessions")
    }

    /// Path of a named session (letters, digits, '.', '_', '-').
    public static func sessionPath(named name: String) throws -> String {
        let ok = !name.isEmpty && !name.hasPrefix(".") && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)
        }
        guard ok else { throw SessionFileError.badName(name) }
        return sessionsDirectory.appendingPathComponent("\(name).dskv").path
    }

    /// Names of saved sessions, sorted.
    public static func savedSessionNames() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: sessionsDirectory.path)) ?? []
        return files.filter { $0.hasSuffix(".dskv") && !$0.hasPrefix(".") }.map { String($0.dropLast(5)) }.sorted()
    }
}
