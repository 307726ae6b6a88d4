// Shared pieces of the fuzz targets: the input as bytes, splitting it into parts, a cursor for the
// choices a target takes from its input, fixture paths and the check that turns a broken invariant
// into a crash libFuzzer records.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum Fuzz {
    /// The repository root: $DS_FUZZ_ROOT, else the directory above the fuzz package (known at build time).
    public static let root: String = {
        if let r = getenv("DS_FUZZ_ROOT"), r.pointee != 0 { return String(cString: r) }
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(4)   // .../Fuzz/Sources/FuzzSupport/FuzzSupport.swift → repository root
        return parts.joined(separator: "/")
    }()

    /// A path relative to the repository root.
    public static func path(_ relative: String) -> String { root + "/" + relative }

    /// The fuzzer's input as an array (size 0 may come with a null pointer).
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// Bytes before the first `separator` and after it (nil when there is none).
    public static func split(_ bytes: [UInt8], at separator: UInt8 = 0) -> (head: [UInt8], tail: [UInt8]?) {
        guard let i = bytes.firstIndex(of: separator) else { return (bytes, nil) }
        return (Array(bytes[..<i]), Array(bytes[(i + 1)...]))
    }

    /// Text from bytes, invalid UTF-8 replaced (what a server gets after decoding a body).
    public static func text(_ bytes: some Collection<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    /// A broken invariant: print what and abort, so that libFuzzer saves the input as a crash.
    public static func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                             file: StaticString = #fileID, line: UInt = #line) {
        if condition() { return }
        fputs("FUZZ INVARIANT BROKEN at \(file):\(line): \(message())\n", stderr)
        abort()
    }

    /// Writes `bytes` to `path` (truncating); false on failure.
    @discardableResult
    public static func writeFile(_ bytes: [UInt8], to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// The whole file at `path`, or nil.
    public static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { return nil }
            if n == 0 { return out }
            out.append(contentsOf: buffer[0..<n])
        }
    }

    /// The value of an environment variable, or nil when unset or empty.
    public static func environment(_ name: String) -> String? {
        guard let v = getenv(name), v.pointee != 0 else { return nil }
        return String(cString: v)
    }

    /// A scratch file name unique to this process (in /dev/shm when there is one: no disk writes).
    public static func scratchPath(_ name: String) -> String {
        var st = stat()
        let dir = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp"
        return "\(dir)/dwarfstar-fuzz-\(getpid())-\(name)"
    }

    /// Runs `body` with LeakSanitizer ignoring what it allocates: for the state a target builds once and
    /// keeps (Swift keeps tag bits in enum payload pointers, so LeakSanitizer may not see such objects as
    /// referenced and would report them as leaks).
    public static func withoutLeakChecks<T>(_ body: () throws -> T) rethrows -> T {
        lsanDisable()
        defer { lsanEnable() }
        return try body()
    }

    /// Prints a line on stderr (startup notes of a target).
    public static func note(_ message: String) { fputs(message + "\n", stderr) }
}

/// Reads the choices a target makes from the front of its input; past the end every read is 0.
public struct FuzzCursor {
    public let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { position >= bytes.count }
    public var remaining: ArraySlice<UInt8> { bytes[min(position, bytes.count)...] }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func uint16() -> UInt16 { UInt16(byte()) | UInt16(byte()) << 8 }

    /// A number in 0..<bound (bound > 0).
    public mutating func below(_ bound: Int) -> Int { bound <= 256 ? Int(byte()) % bound : Int(uint16()) % bound }
}

// The LeakSanitizer interface of the AddressSanitizer runtime the targets are linked with.
@_silgen_name("__lsan_disable") func lsanDisable()
@_silgen_name("__lsan_enable") func lsanEnable()
