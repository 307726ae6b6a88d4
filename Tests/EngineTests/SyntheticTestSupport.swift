// Shared pieces of the synthetic-model tests: fixture paths, temporary directories, writing a tiny model,
// comparing its keys and tensor names with the fixture's, and the run-and-generate check.

import Foundation
import Testing
import Engine
import GGUF
import Models
import Sampling
import Synthesis

/// The path of a fixture in Tests/ModelsTests/Fixtures/frontier.
func frontierFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/frontier/\(name)").path
}

/// A fresh temporary directory (the caller removes it).
func syntheticTempDirectory(_ tag: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-synth-\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// Writes `spec` as `dir/name` with the tokenizer of the GGUF at `fixture`; returns its path.
func writeSynthetic(_ spec: SyntheticModelSpec, tokenizerFrom fixture: String, to dir: URL, name: String) throws -> String {
    let path = dir.appendingPathComponent(name).path
    try SyntheticModel.write(spec, tokenizerFrom: try GGUFFile(path: fixture), to: path)
    return path
}

/// Opens the synthetic file at `path` and the fixture at `fixturePath`, expecting exactly the fixture's
/// metadata keys, each with the fixture's value type.
func openAgainstFixture(_ path: String, _ fixturePath: String) throws -> (synth: GGUFFile, fixture: GGUFFile) {
    let synth = try GGUFFile(path: path), fixture = try GGUFFile(path: fixturePath)
    #expect(Set(synth.metadataKeys) == Set(fixture.metadataKeys))
    for key in fixture.metadataKeys { #expect(synth[key]?.type == fixture[key]?.type, "\(key)") }
    return (synth, fixture)
}

/// Layers `layers` of `synth` have the tensor names of the fixture's same layers, and so has the rest.
func expectSameTensorNames(_ synth: GGUFFile, _ fixture: GGUFFile, layers: Range<Int>) {
    for l in layers { #expect(layerTensorNames(synth, l) == layerTensorNames(fixture, l), "layer \(l)") }
    #expect(globalTensorNames(synth) == globalTensorNames(fixture))
}

/// The tensor names of layer `l` without their "blk.l." prefix.
func layerTensorNames(_ g: GGUFFile, _ l: Int) -> Set<String> {
    Set(g.tensors.map(\.name).filter { $0.hasPrefix("blk.\(l).") }.map { String($0.dropFirst("blk.\(l).".count)) })
}

/// The tensor names outside the layers.
func globalTensorNames(_ g: GGUFFile) -> Set<String> {
    Set(g.tensors.map(\.name).filter { !$0.hasPrefix("blk.") })
}

/// Writes a tiny model with `write` into a fresh temporary directory and runs `body` on its path and spec;
/// the directory is removed afterwards.
func withTiny(_ tag: String, _ write: (URL) throws -> (String, SyntheticModelSpec),
              _ body: (String, SyntheticModelSpec) throws -> Void) throws {
    let dir = try syntheticTempDirectory(tag)
    defer { try? FileManager.default.removeItem(at: dir) }
    let (path, spec) = try write(dir)
    try body(path, spec)
}

/// `withTiny`, with the model loaded.
func withLoadedTiny(_ tag: String, _ write: (URL) throws -> (String, SyntheticModelSpec),
                    _ body: (LoadedModel, SyntheticModelSpec) throws -> Void) throws {
    try withTiny(tag, write) { path, spec in try body(try LoadedModel(path: path), spec) }
}

/// `SyntheticModel.write` refuses `spec` (with the tokenizer of the GGUF at `fixture`, into a temporary directory).
func expectRejected(_ spec: SyntheticModelSpec, tokenizerFrom fixture: String) throws {
    let dir = try syntheticTempDirectory("rejected")
    defer { try? FileManager.default.removeItem(at: dir) }
    let source = try GGUFFile(path: fixture)
    #expect(throws: GGUFError.self) { try SyntheticModel.write(spec, tokenizerFrom: source, to: dir.appendingPathComponent("rejected.gguf").path) }
}

/// A synthetic model evaluates `count` tokens (3 + 37·i mod 500) in one batch with finite, non-zero logits at
/// every position, and a session on it greedily generates 6 tokens.
func expectRunsAndGenerates(_ loaded: LoadedModel, tokens count: Int, context: Int) throws {
    let tokens = (0..<count).map { Int32(3 + ($0 * 37) % 500) }
    let state = InferenceState(model: loaded.model, contextLength: context, maxBatch: 64, threads: 2)
    let logits = Array(try loaded.model.forward(tokens, startPosition: 0, state: state, logits: .all))
    #expect(logits.count == tokens.count * loaded.model.vocabularySize)
    #expect(logits.allSatisfy { $0.isFinite })
    #expect(logits.contains { $0 != 0 })

    let session = Session(loaded, contextLength: context, threads: 2)
    var options = GenerationOptions()
    options.maxTokens = 6
    options.ignoreEOS = true
    options.sampler = .greedy
    let result = try session.generate(prompt: Array(tokens.prefix(20)), options: options) { _ in }
    #expect(result.tokens.count == 6)
}
