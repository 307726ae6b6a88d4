// What a verification pass of k rows costs on this machine for this model, relative to one decode step,
// kept beside the model (`<model>.dspasscosts`, or ~/.cache/dwarfstar/passcosts when the model's folder
// is not writable) like the expert statistics. The draft-length tuner of the next run starts from these
// instead of probing lengths; each run's measurements are averaged in when it ends.
//
// Format (text): "dwarfstar-pass-costs <model file size> <threads> <cpu>" (cpu: /proc/cpuinfo's model
// name, spaces as '_'), then one "rows cost" line per measured length (2 ≤ rows ≤ 64, 1 ≤ cost ≤ 64).
// A file for another model size, thread count or CPU is ignored; a malformed one is ignored with a warning.

import Foundation

public enum PassCosts {
    public static let magic = "dwarfstar-pass-costs"
    static let maximumBytes = 4096

    /// The CPU this process runs on, as one word.
    public static let cpu: String = {
        #if os(Linux)
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            let name = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if !name.isEmpty { return name.replacingOccurrences(of: " ", with: "_") }
        }
        #endif
        return "unknown"
    }()

    public static func header(modelFileSize: Int, threads: Int) -> String { "\(magic) \(modelFileSize) \(threads) \(cpu)" }

    /// The costs in `data`, [] when it was written for another model size, thread count or CPU.
    static func parse(_ data: Data, modelFileSize: Int, threads: Int) throws -> [Int: Double] {
        guard let text = String(data: data, encoding: .utf8) else { throw PassCostError.malformed("not UTF-8") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).makeIterator()
        guard let first = lines.next(), first.hasPrefix(magic + " ") else { throw PassCostError.malformed("no \(magic) header") }
        guard first == header(modelFileSize: modelFileSize, threads: threads) else { return [:] }
        var costs: [Int: Double] = [:]
        while let line = lines.next() {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let rows = Int(fields[0]), let cost = Double(fields[1]), (2...64).contains(rows),
                  cost.isFinite, cost >= 1, cost <= 64, costs[rows] == nil else {
                throw PassCostError.malformed("bad line \(String(line.prefix(40)).debugDescription)")
            }
            costs[rows] = cost
        }
        return costs
    }

    static func encode(_ costs: [Int: Double], modelFileSize: Int, threads: Int) -> String {
        var text = header(modelFileSize: modelFileSize, threads: threads) + "\n"
        for rows in costs.keys.sorted() where (2...64).contains(rows) {
            text += "\(rows) \(String(format: "%.4f", min(64, max(1, costs[rows]!))))\n"
        }
        return text
    }
}

enum PassCostError: Error, CustomStringConvertible {
    case malformed(String)
    var description: String { switch self { case .malformed(let why): return why } }
}

extension LoadedModel {
    /// Where this model's pass costs live.
    public var passCostsPath: String { sidecarPath(suffix: "dspasscosts", cacheFolder: "passcosts") }

    /// Pass costs saved by earlier runs with `threads` threads on this CPU ([:] when none).
    public func loadPassCosts(threads: Int, warn: (String) -> Void = { FileHandle.standardError.write(Data(("warning: " + $0 + "\n").utf8)) })
        -> [Int: Double] {
        let path = passCostsPath
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        do {
            return try PassCosts.parse(try AtomicFile.read(path, limit: PassCosts.maximumBytes), modelFileSize: gguf.fileSize, threads: threads)
        } catch {
            warn("ignoring the pass costs \(path): \(error)")
            return [:]
        }
    }

    /// Averages `measured` into the saved costs (best effort, written through AtomicFile).
    public func savePassCosts(_ measured: [Int: Double], threads: Int) {
        guard !measured.isEmpty else { return }
        var costs = loadPassCosts(threads: threads, warn: { _ in })
        for (rows, cost) in measured { costs[rows] = costs[rows].map { ($0 + cost) / 2 } ?? cost }
        try? AtomicFile.write(Data(PassCosts.encode(costs, modelFileSize: gguf.fileSize, threads: threads).utf8), to: passCostsPath)
    }
}
