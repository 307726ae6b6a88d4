// Fuzz target: the SentencePiece tokenizer (`llama` vocabularies: BPE over "▁"-escaped text by piece
// score, byte fallback) — encoding and streaming decoding (checks in FuzzSupport/TokenizerHarness.swift).
//
// No fixture in the repository has a SentencePiece vocabulary, so the tokenizers are built here (byte 0
// of the input picks one, modulo 3):
//   0: Llama-2 style: <unk> <s> </s>, control and user-defined chat tokens, all 256 byte tokens, pieces
//      for letters, digits, punctuation, common English pieces and a few non-ASCII ones, space prefix on;
//   1: the same pieces without byte tokens (unknown characters become <unk>), space prefix off, no scores;
//   2: with DS_FUZZ_SPM_MODEL=FILE.gguf, a real vocabulary (Scripts/fuzz.sh passes Gemma 3's 262144
//      tokens when the model is present); otherwise 0 again.

import Engine
import FuzzSupport
import GGUF
import Tokenizers

enum SyntheticSentencePiece {
    static let pieces: [String] = {
        var p = ["\u{2581}", "\u{2581}\u{2581}", "\u{2581}\u{2581}\u{2581}\u{2581}"]
        p += (0x21...0x7E).map { String(Character(Unicode.Scalar($0)!)) }
        p += ["th", "he", "in", "er", "an", "re", "on", "en", "at", "ed", "nd", "is", "or", "es", "it", "ll", "ar", "as",
              "le", "al", "ic", "ing", "ion", "the", "\u{2581}t", "\u{2581}a", "\u{2581}th", "\u{2581}the", "\u{2581}w",
              "\u{2581}s", "\u{2581}o", "\u{2581}i", "\u{2581}c", "\u{2581}f", "\u{2581}b", "\u{2581}p", "\u{2581}m",
              "\u{2581}to", "\u{2581}of", "\u{2581}and", "\u{2581}in", "\u{2581}h", "\u{2581}d", "\u{2581}hello",
              "\u{2581}world", "\n", "\n\n", "\t", "é", "ü", "ß", "日", "本", "語", "日本", "本語", "🙂", "\u{2581}é"]
        return p
    }()

    static func vocabulary(byteTokens: Bool) -> TokenizerVocabulary {
        var tokens = ["<unk>", "<s>", "</s>", "<start_of_turn>", "<end_of_turn>", "<tool>", "</tool>", "<unused0>"]
        var types: [Int32] = [2, 3, 3, 3, 3, 4, 4, 5]
        var scores: [Float] = [0, 0, 0, 0, 0, 0, 0, 0]
        if byteTokens {
            for byte in 0..<256 {
                let hex = String(byte, radix: 16, uppercase: true)
                tokens.append("<0x" + (hex.count == 1 ? "0" : "") + hex + ">")
                types.append(6)
                scores.append(0)
            }
        }
        for (i, piece) in pieces.enumerated() {
            tokens.append(piece)
            types.append(1)
            // Longer pieces first, as trained vocabularies tend to score them.
            scores.append(-Float(i) - 1000 / Float(1 + piece.unicodeScalars.count))
        }
        var v = TokenizerVocabulary(model: "llama", tokens: tokens, scores: byteTokens ? scores : nil, tokenTypes: types,
                                    bosId: 1, eosId: 2, unknownId: 0, addSpacePrefix: byteTokens)
        v.eotId = 4
        return v
    }
}

let tokenizers: [FuzzTokenizer] = Fuzz.withoutLeakChecks {
    var list: [FuzzTokenizer] = []
    do {
        let llama2 = try FuzzTokenizer(name: "synthetic-bytes", vocabulary: SyntheticSentencePiece.vocabulary(byteTokens: true))
        list.append(llama2)
        list.append(try FuzzTokenizer(name: "synthetic-unk", vocabulary: SyntheticSentencePiece.vocabulary(byteTokens: false)))
        if let path = Fuzz.environment("DS_FUZZ_SPM_MODEL") {
            list.append(try FuzzTokenizer(name: "model", vocabulary: LoadedModel.vocabulary(from: GGUFFile(path: path))))
        } else {
            list.append(llama2)
        }
    } catch {
        Fuzz.check(false, "cannot build the tokenizers: \(error)")
    }
    Fuzz.note("FuzzTokenizerSPM: " + list.map { "\($0.name) (\($0.tokenizer.vocabularySize))" }.joined(separator: ", "))
    return list
}


@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizerSPM(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    TokenizerHarness.run(Fuzz.bytes(data, size), on: tokenizers)
    return 0
}
