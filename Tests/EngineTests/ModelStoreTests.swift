// Model store: names resolve, paths pass through, SHA-256 is right, unknown names are clear errors.

import Foundation
import Testing
import Engine

@Suite struct ModelStoreTests {
    @Test func sha256KnownVectors() throws {
        let dir = FileManager.default.temporaryDirectory
        let empty = dir.appendingPathComponent("empty-\(UUID())"), abc = dir.appendingPathComponent("abc-\(UUID())")
        try Data().write(to: empty)
        try Data("abc".utf8).write(to: abc)
        #expect(try ModelStore.sha256(ofFile: empty.path) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(try ModelStore.sha256(ofFile: abc.path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let million = dir.appendingPathComponent("a-\(UUID())")
        try Data(repeating: UInt8(ascii: "a"), count: 1_000_000).write(to: million)
        #expect(try ModelStore.sha256(ofFile: million.path) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func namesAndPaths() throws {
        #expect(ModelStore.knownModel("smollm2")?.fileName == "smollm2-135m-instruct-q4_1.gguf")
        #expect(ModelStore.knownModel("Gemma3-270M")?.name == "gemma3-270m")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("m-\(UUID()).gguf")
        try Data([1]).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try ModelStore.resolve(file.path) == file.path)
        #expect(throws: ModelStoreError.self) { try ModelStore.resolve("definitely-not-a-model") }
    }
}
