// tokenize: what the engine sees of a text, with the model file's own vocabulary.

import ArgumentParser
import Engine
import Foundation
import GGUF
import Tokenizers

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Token ids and pieces of a text, with a model's own tokenizer (only its vocabulary is read).",
        discussion: """
            Default output: one token per line, "id -> 'piece'" (as llama-tokenize prints). --ids prints the ids \
            as one JSON array; --pieces the pieces as one JSON array of strings.
            --list-pre-tokenizers prints the tokenizer.ggml.pre names this build knows (with --json: their split \
            patterns and flags) and needs no model.
            """)

    @Option(name: [.short, .customLong("model")], help: "Model name (smollm2, gemma3-270m) or path to a GGUF file.")
    var model: String = ModelStore.defaultModelName
    @Argument(help: "The text (or use --file, or - for standard input).") var text: String?
    @Option(name: [.short, .customLong("file")], help: "Read the text from this file.") var file: String?
    @Flag(help: "Print only the ids, as a JSON array.") var ids = false
    @Flag(help: "Print only the pieces, as a JSON array of strings.") var pieces = false
    @Flag(name: .customLong("no-bos"), help: "Do not add the BOS/EOS tokens the vocabulary's flags ask for.") var noSpecial = false
    @Flag(name: .customLong("no-parse-special"), help: "Tokenize special-token text such as <|im_start|> as plain text.")
    var noParseSpecial = false
    @Flag(name: .customLong("list-pre-tokenizers"), help: "List the known tokenizer.ggml.pre names and exit.")
    var listPreTokenizers = false
    @Flag(help: "With --list-pre-tokenizers: names, split patterns and flags as JSON.") var json = false

    func validate() throws {
        if ids && pieces { throw ValidationError("--ids and --pieces are exclusive") }
        if !listPreTokenizers && text == nil && file == nil { throw ValidationError("give a text, --file FILE, or - for standard input") }
        if text != nil && file != nil { throw ValidationError("give a text or --file, not both") }
    }

    func run() throws {
        if listPreTokenizers {
            print(json ? PreTokenizer.catalogJSON() : PreTokenizer.supportedNames.joined(separator: "\n"))
            return
        }
        let input: String
        do {
            if let file {
                input = String(decoding: try Data(contentsOf: URL(fileURLWithPath: file)), as: UTF8.self)
            } else if text == "-" {
                input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                input = text ?? ""
            }
        } catch {
            throw fail(error)
        }
        let tokenizer: Tokenizer
        do {
            let g = try GGUFFile(path: try ModelStore.resolve(model))
            tokenizer = try Tokenizer(LoadedModel.vocabulary(from: g))
        } catch {
            throw fail(error)
        }
        let tokens = tokenizer.encode(input, addSpecial: !noSpecial, parseSpecial: !noParseSpecial)
        if ids {
            print("[" + tokens.map(String.init).joined(separator: ", ") + "]")
        } else if pieces {
            let texts = tokens.map { String(decoding: tokenizer.tokenPiece($0), as: UTF8.self) }
            let data = try JSONSerialization.data(withJSONObject: texts, options: [.withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for token in tokens {
                let piece = String(decoding: tokenizer.tokenPiece(token), as: UTF8.self)
                print(String(format: "%6d -> '%@'", token, piece))
            }
        }
    }
}
