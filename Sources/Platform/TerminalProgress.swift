// A progress bar on standard error for long work (loading a large model, pulling, synth, long prefills).
// Drawn only when standard error is a terminal, and only once the work has run for a moment (short work
// draws nothing); redrawn at most ten times a second, on one line that is cleared when the work ends.
// When standard error is not a terminal it writes nothing at all.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class TerminalProgress: @unchecked Sendable {
    public enum Unit: Sendable {
        case bytes
        case tokens
        case items
    }

    public let label: String
    public let total: Int64
    public let unit: Unit
    private let enabled: Bool
    private let started = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false
    private let lock = NSLock()
    /// Seconds before the first draw.
    private let delay: Double

    /// Whether standard error is a terminal (the only case in which anything is drawn).
    public static var isTerminal: Bool { isatty(STDERR_FILENO) != 0 }

    /// `enabled` nil: draw when standard error is a terminal.
    public init(_ label: String, total: Int64, unit: Unit, enabled: Bool? = nil, delay: Double = 0.3) {
        self.label = label
        self.total = max(1, total)
        self.unit = unit
        self.enabled = enabled ?? TerminalProgress.isTerminal
        self.delay = delay
    }

    /// Reports `done` of `total`; draws when due.
    public func update(_ done: Int64) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        let elapsed = now.timeIntervalSince(started)
        guard elapsed >= delay, now.timeIntervalSince(lastDraw) >= 0.1 || done >= total else { return }
        lastDraw = now
        drawn = true
        FileHandle.standardError.write(Data(("\r" + TerminalProgress.line(label: label, done: done, total: total, unit: unit,
                                                                         seconds: elapsed) + "\u{1B}[K").utf8))
    }

    /// Clears the bar's line (if one was drawn).
    public func finish() {
        lock.lock()
        defer { lock.unlock() }
        guard drawn else { return }
        drawn = false
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    /// The text of the bar: `label [█████·····]  45%  1.21/2.70 GB  352 MB/s  ETA 4s`.
    public static func line(label: String, done: Int64, total: Int64, unit: Unit, seconds: Double, width: Int = 24) -> String {
        let fraction = min(1, max(0, Double(done) / Double(max(total, 1))))
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let rate = seconds > 0 ? Double(done) / seconds : 0
        var text = "\(label) [\(bar)] \(String(format: "%3d%%", Int(fraction * 100)))  "
        switch unit {
        case .bytes:
            text += "\(size(done))/\(size(total))  \(size(Int64(rate)))/s"
        case .tokens:
            text += "\(done)/\(total) tokens  \(String(format: "%.0f", rate)) t/s"
        case .items:
            text += "\(done)/\(total)"
        }
        if rate > 0 && done < total {
            text += "  ETA \(duration(Double(total - done) / rate))"
        }
        return text
    }

    static func size(_ bytes: Int64) -> String {
        let value = Double(bytes)
        if value >= 1e9 { return String(format: "%.2f GB", value / 1e9) }
        if value >= 1e6 { return String(format: "%.0f MB", value / 1e6) }
        return String(format: "%.0f kB", value / 1e3)
    }

    static func duration(_ seconds: Double) -> String {
        if seconds >= 3600 { return String(format: "%dh%02dm", Int(seconds) / 3600, Int(seconds) % 3600 / 60) }
        if seconds >= 60 { return String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60) }
        return "\(Int(seconds.rounded(.up)))s"
    }
}
