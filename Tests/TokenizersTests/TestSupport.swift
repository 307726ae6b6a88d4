import Foundation
import Tokenizers
import GGUF
import Engine

/// Fixture files next to this source file (no resource bundle needed).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func data(_ name: String) throws -> Data { try Data(contentsOf: directory.appendingPathComponent(name)) }

    static func text(_ name: String) throws -> String { String(decoding: try data(name), as: UTF8.self) }

    static func json(_ name: String) throws -> Any { try JSONSerialization.jsonObject(with: try data(name)) }

    /// The corpus cut into units exactly as Scripts/make-tokenizer-goldens.py does: after every "\n"
    /// whose next character is not space, tab, "\n" or "\r".
    static let corpusUnits: [String] = {
        guard let bytes = try? [UInt8](data("corpus.txt")) else { return [] }
        var units: [String] = []
        var start = 0
        for index in 1..<bytes.count where bytes[index - 1] == 0x0A {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: continue
            default:
                units.append(String(decoding: bytes[start..<index], as: UTF8.self))
                start = index
            }
        }
        if start < bytes.count { units.append(String(decoding: bytes[start...], as: UTF8.self)) }
        return units
    }()

    /// One line of space-separated ids per corpus unit.
    static func goldenIds(_ name: String) throws -> [[Int32]] {
        let text = try self.text(name)
        var rows = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.split(separator: " ").map { Int32($0)! }
        }
        if rows.last?.isEmpty == true && text.hasSuffix("\n") { rows.removeLast() }
        return rows
    }
}

/// The real models, from $DWARFSTAR_MODELS or ~/.dwarfstar/models. Tests that need one are skipped, with
/// a loud message, when it is missing.
enum RealModels {
    /// Resolves (and fetches once per machine, via ModelStore.pull) a known model. Tests that need one
    /// are skipped, with a loud message, when it cannot be fetched.
    static func file(_ name: String) -> String? {
        do {
            return try ModelStore.resolveOrPull(name)
        } catch {
            FileHandle.standardError.write(Data("""

                ************************************************************************
                SKIPPING tokenizer tests on \(name): the model could not be fetched
                \(error)
                ************************************************************************

                """.utf8))
            return nil
        }
    }

    static let smollm2Path = file("smollm2")
    static let gemma3Path = file("gemma3-270m")

    static let smollm2: Tokenizer? = smollm2Path.flatMap { try? load($0) }
    static let gemma3: Tokenizer? = gemma3Path.flatMap { try? load($0) }

    static func load(_ path: String) throws -> Tokenizer {
        try Tokenizer(vocabulary(path))
    }
}

/// Tokenizer inputs read by the engine's own GGUF reader.
func vocabulary(_ path: String) throws -> TokenizerVocabulary {
    try LoadedModel.vocabulary(from: GGUFFile(path: path))
}

extension FileManager {
    func homeDirectoryForCurrentDirectory() -> URL {
        URL(fileURLWithPath: NSHomeDirectory())
    }
}

/// A readable description of where two id lists part.
func firstDifference(_ actual: [Int32], _ expected: [Int32]) -> String {
    var index = 0
    while index < min(actual.count, expected.count) && actual[index] == expected[index] { index += 1 }
    let from = max(0, index - 3)
    return "first difference at token \(index): got \(Array(actual[from..<min(actual.count, index + 8)])) "
        + "expected \(Array(expected[from..<min(expected.count, index + 8)])) (from token \(from); "
        + "lengths \(actual.count) vs \(expected.count))"
}

/// FNV-1a 32 over UTF-8, as the goldens script hashes pre-tokenizer splits.
func fnv1a32(_ text: String) -> UInt32 {
    var hash: UInt32 = 0x811C_9DC5
    for byte in text.utf8 { hash = (hash ^ UInt32(byte)) &* 0x0100_0193 }
    return hash
}
