// Fuzz target: BPE tokenizers — byte-level BPE (`gpt2`) under each pre-tokenizer family, and Gemma 4's
// BPE — encoding and streaming decoding (checks in FuzzSupport/TokenizerHarness.swift).
//
// Tokenizers (byte 0 of the input picks one, modulo the count): the 512-token cut of SmolLM2's
// vocabulary in the tiny llama fixture under its own pre-tokenizer ("smollm") and under gpt2,
// llama-bpe (whole-word lookup before merges), qwen2, deepseek-v3, dbrx, "default" and eight run by the
// pattern matcher (gpt-4o, kimi-k2, superbpe, bailingmoe, jais-2, deepseek-llm, tekken, exaone-moe); the Gemma 4
// fixture's vocabulary. With DS_FUZZ_BPE_MODEL=FILE.gguf a real vocabulary (e.g. SmolLM2's 49152
// tokens) is added as the last one.

import Engine
import FuzzSupport
import GGUF
import Tokenizers

let tokenizers: [FuzzTokenizer] = Fuzz.withoutLeakChecks {
    var list: [FuzzTokenizer] = []
    do {
        let tiny = try LoadedModel.vocabulary(from: GGUFFile(path: Fuzz.path("Tests/TokenizersTests/Fixtures/llama.f32.gguf")))
        // The hand-coded scanners' families, and some run by the pattern matcher (SplitProgram): GPT-4o's
        // case runs, Kimi K2's Han intersection, SuperBPE's digit cuts, Ling's possessive quantifiers,
        // Jais 2's whitespace powers of two, DeepSeek LLM's anchored whitespace.
        for pre in [tiny.pre ?? "smollm", "gpt2", "llama-bpe", "qwen2", "deepseek-v3", "dbrx", "default",
                    "gpt-4o", "kimi-k2", "superbpe", "bailingmoe", "jais-2", "deepseek-llm", "tekken", "exaone-moe"] {
            var v = tiny
            v.pre = pre
            list.append(try FuzzTokenizer(name: "tiny-\(pre)", vocabulary: v))
        }
        let gemma4 = try LoadedModel.vocabulary(from: GGUFFile(path: Fuzz.path("Tests/ModelsTests/Fixtures/frontier/gemma4.f32.gguf")))
        list.append(try FuzzTokenizer(name: "gemma4-fixture", vocabulary: gemma4))
        if let path = Fuzz.environment("DS_FUZZ_BPE_MODEL") {
            list.append(try FuzzTokenizer(name: "model", vocabulary: LoadedModel.vocabulary(from: GGUFFile(path: path))))
        }
    } catch {
        Fuzz.check(false, "cannot build the tokenizers: \(error)")
    }
    Fuzz.note("FuzzTokenizerBPE: " + list.map { "\($0.name) (\($0.tokenizer.vocabularySize))" }.joined(separator: ", "))
    return list
}


@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizerBPE(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    TokenizerHarness.run(Fuzz.bytes(data, size), on: tokenizers)
    return 0
}
