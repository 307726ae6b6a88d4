// Files replaced whole or not at all: the new bytes go to a temporary file of a fresh, unique name in
// the same directory (created O_EXCL | O_NOFOLLOW, so nothing already there is followed or
// overwritten), are fsync'd, and one rename(2) puts them in place; the directory is fsync'd after, so
// the new name survives a crash. On any failure the temporary file is removed and the old file (if any)
// is left as it was. Readers see the old file or the new one, never a mix.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file that could not be written or read: its path and why.
public struct FileIOError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write, systemRead = Glibc.read
#elseif canImport(Darwin)
private let systemWrite = Darwin.write, systemRead = Darwin.read
#endif

enum AtomicFile {
    /// A temporary name beside `path`, hidden (leading dot) and unique to this process and call.
    static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let random = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(random)").path
    }

    /// Replaces `path` with `data` (creating the directory when needed).
    static func write(_ data: Data, to path: String) throws {
        try data.withUnsafeBytes { try write(bytes: $0, to: path) }
    }

    static func write(bytes: UnsafeRawBufferPointer, to path: String) throws {
        func failure(_ what: String, _ code: Int32) -> FileIOError {
            FileIOError(path: path, message: "cannot write: \(what): \(String(cString: strerror(code)))")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw FileIOError(path: path, message: "cannot create its folder: \(error.localizedDescription)")
        }
        let tmp = temporaryPath(for: path)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create a temporary file in \(directory)", errno) }
        var done = false
        defer {
            if !done { unlink(tmp) }
        }
        var written = 0
        while written < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let e = n < 0 ? errno : EIO
                close(fd)
                throw failure("writing", e)
            }
            written += n
        }
        // The bytes reach the disk before the name points at them.
        guard fsync(fd) == 0 else { let e = errno; close(fd); throw failure("fsync", e) }
        guard close(fd) == 0 else { throw failure("close", errno) }
        guard rename(tmp, path) == 0 else { throw failure("rename", errno) }
        done = true
        syncDirectory(directory)
    }

    /// fsync of a directory (makes a rename in it durable); best effort.
    static func syncDirectory(_ directory: String) {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return }
        _ = fsync(dfd)
        close(dfd)
    }

    /// Reads a whole file into memory with read(2) (no mapping: a file truncated under a mapping would
    /// kill the process with SIGBUS). At most `limit` bytes; a larger file is an error.
    static func read(_ path: String, limit: Int = Int.max) throws -> Data {
        func failure(_ message: String) -> FileIOError { FileIOError(path: path, message: message) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure("cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw failure("not a regular file") }
        guard Int(st.st_size) <= limit else { throw failure("\(st.st_size) bytes, more than the \(limit) expected at most") }
        var data = Data(count: Int(st.st_size))
        var got = 0
        try data.withUnsafeMutableBytes { raw in
            while got < raw.count {
                let n = systemRead(fd, raw.baseAddress! + got, raw.count - got)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw failure("read error: \(String(cString: strerror(errno)))") }
                if n == 0 { break }   // shrank meanwhile: what is there is read (the checks catch the rest)
                got += n
            }
        }
        return got == data.count ? data : data.prefix(got)
    }
}
