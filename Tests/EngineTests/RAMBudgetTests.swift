// A MoE model about 3× larger than --ram-budget runs with its peak resident memory (VmHWM of the
// process) within the budget + 5%, its routed experts streamed from disk; and a budget that cannot
// hold even the resident part is a clear error.

import Foundation
import Testing

@Suite(.serialized, .enabled(if: Binaries.dwarfstar != nil))
struct RAMBudgetTests {
    /// A DeepSeek-V3-shaped random model of ~0.9 GB, 91% of it routed experts (written once per machine).
    static func model() throws -> String {
        let dir = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dwarfstar/synth")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("deepseek2-512x8-128e-q4_K.gguf").path
        if !FileManager.default.fileExists(atPath: path) {
            let r = try runCLI(["synth", "--arch", "deepseek2", "-o", path + ".tmp", "--hidden", "512", "--layers", "8", "--heads", "8",
                                "--kv-heads", "8", "--ffn", "1024", "--experts", "128", "--experts-used", "6", "--expert-ffn", "1024",
                                "--type", "q4_K"])
            guard r.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: r.stderr]) }
            try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
        }
        return path
    }

    @Test func peakResidentMemoryStaysWithinTheBudget() throws {
        let path = try RAMBudgetTests.model()
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let budget = size / 3
        RAMBudgetTests.dropFromPageCache(path)
        let r = try runCLI(["run", "-m", path, "--raw", "-p", "The quick brown fox jumps over the lazy dog", "-n", "24", "--temp", "0",
                            "--ctx", "256", "-t", "2", "--ram-budget", "\(budget >> 20)M"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("streamed from disk"), "\(r.stderr)")
        let peak = r.stderr.components(separatedBy: "peak RSS ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? Int.max
        #expect(peak << 20 <= budget + budget / 20, "peak RSS \(peak) MiB for a budget of \(budget >> 20) MiB (model \(size >> 20) MiB)")
        // The page cache holds no second copy of the streamed experts: of the file, only about the resident
        // tensors (mapped, so inside the RSS above) are cached after the run.
        let expertMiB = r.stderr.components(separatedBy: "routed experts (").dropFirst().first.flatMap { Double($0.prefix { $0.isNumber || $0 == "." }) } ?? 0
        #expect(expertMiB > 0, "\(r.stderr)")
        let cached = RAMBudgetTests.pageCacheBytes(path)
        let residentTensors = size - Int(expertMiB * 1048576)
        #expect(cached <= residentTensors + budget / 20,
                "\(cached >> 20) MiB of the model file in the page cache; its resident tensors are \(residentTensors >> 20) MiB")

        // Same greedy text as with every expert mapped (and, as under a budget, the file's rows in place).
        let resident = try runCLI(["run", "-m", path, "--raw", "-p", "The quick brown fox jumps over the lazy dog", "-n", "24", "--temp", "0",
                                   "--ctx", "256", "-t", "2", "--no-repack"])
        #expect(resident.status == 0 && resident.stdout == r.stdout)

        // Expert popularity is kept beside the model; the next start reads the most used experts in.
        let stats = try String(contentsOfFile: path + ".dsexperts", encoding: .utf8)
        #expect(stats.hasPrefix("dwarfstar-expert-statistics \(size)\n") && stats.split(separator: "\n").count > 10)
        let again = try runCLI(["run", "-m", path, "--raw", "-p", "The quick brown fox jumps over the lazy dog", "-n", "24", "--temp", "0",
                                "--ctx", "256", "-t", "2", "--ram-budget", "\(budget >> 20)M"])
        #expect(again.status == 0 && again.stderr.contains("most used experts read in at start") && again.stdout == r.stdout)

        let tooSmall = try runCLI(["run", "-m", path, "--raw", "-p", "hi", "-n", "2", "--ram-budget", "20M"])
        #expect(tooSmall.status != 0 && tooSmall.stderr.contains("--ram-budget 20 MiB is too small"))
    }

    /// Asks the kernel to drop the file's clean pages from the page cache.
    static func dropFromPageCache(_ path: String) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        close(fd)
    }

    /// Bytes of the file now in the page cache (mincore over a mapping that touches nothing).
    static func pageCacheBytes(_ path: String) -> Int {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return 0 }
        let size = Int(st.st_size), page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { return 0 }
        defer { munmap(map, size) }
        var flags = [UInt8](repeating: 0, count: (size + page - 1) / page)
        guard mincore(map, size, &flags) == 0 else { return 0 }
        return flags.reduce(0) { $0 + Int($1 & 1) } * page
    }
}
