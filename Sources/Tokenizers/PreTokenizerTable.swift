import Foundation

/// Every `tokenizer.ggml.pre` name of a byte-level BPE vocabulary that llama.cpp knows, with the split
/// patterns of the model's own `tokenizer.json` (a `Sequence` of `Split(pattern, "Isolated")` steps before
/// `ByteLevel`; `Digits(individual_digits)` is `\p{N}`, `ByteLevel(use_regex)` the GPT-2 pattern,
/// `Punctuation` its class). Where llama.cpp rewrote a pattern for std::regex it says so and keeps the
/// original in a comment; the original is what is written here.
///
/// Not here: the names whose files are not byte-level (llama.cpp's "gemma4" pre-tokenizer for a `gpt2`
/// vocabulary, "granite-embed-multi-311m", "sarvam-moe", "whitespace"); a file naming one is refused
/// with the name (Gemma 4's own `gemma4` tokenizer model is supported).
extension PreTokenizer {
    public struct Definition: Sendable {
        public let names: [String]
        public let patterns: [String]
        /// llama.cpp's `ignore_merges`: a piece that is itself a vocabulary token is emitted whole.
        public var ignoreMerges = false
        /// llama.cpp adds BOS by default for these (when `tokenizer.ggml.add_bos_token` is absent).
        public var addsBos = false
    }

    enum Patterns {
        static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        static let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        static let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        static let deepseekV3 = ##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##
        static let cjkKana = #"[一-龥぀-ゟ゠-ヿ]+"#
        static let singleNumber = #"\p{N}"#
        static let numberTriples = #"\p{N}{1,3}"#
        static let numberRun = #"\p{N}+"#
        static let asciiDigitTriple = #"[0-9][0-9][0-9]"#
        static let punctuation = #"[\p{P}\$\+<=>\^~\|]+"#
        /// GPT-4o / Llama 4 (o200k): words with at most an uppercase run before lowercase, contractions attached.
        static let gpt4o = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        static let tekken = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        static let digitCutsFromRight = #"(?=(\d{3})+(?!\d))"#
        static let numberGroupsFromRight = #"\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))"#
        static let digitGroupsBeforeBoundary = #"\d{1,3}(?=(?:\d{3})*\b)"#
        static let poro = #" ?[^(\s|.,!?…。，、।۔،)]+"#
    }

    public static let definitions: [Definition] = [
        // llama.cpp's own fallback (no tokenizer.json behind it).
        Definition(names: ["default"], patterns: [Patterns.punctuation, Patterns.gpt2, Patterns.numberRun, Patterns.asciiDigitTriple]),
        Definition(names: ["gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4", "jina-es",
                           "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert",
                           "jina-v1-en", "jina-v2-code", "roberta-bpe"],
                   patterns: [Patterns.gpt2]),
        Definition(names: ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2"],
                   patterns: [Patterns.singleNumber, Patterns.gpt2]),
        Definition(names: ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"],
                   patterns: [Patterns.llama3], ignoreMerges: true, addsBos: true),
        Definition(names: ["dbrx", "smaug-bpe", "chatglm-bpe"], patterns: [Patterns.llama3]),
        Definition(names: ["glm4", "glm5"], patterns: [Patterns.llama3], ignoreMerges: true),
        // Jais 2: the Llama 3 pattern with whitespace runs cut in powers of two.
        Definition(names: ["jais-2"], patterns: [#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}"#]),
        Definition(names: ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open", "grok-2"],
                   patterns: [Patterns.qwen2]),
        // Qwen 3.5: marks join letters.
        Definition(names: ["qwen35"], patterns: [#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#]),
        Definition(names: ["minicpm5"], patterns: [Patterns.numberTriples, #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#],
                   ignoreMerges: true),
        Definition(names: ["deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"],
                   patterns: [Patterns.numberTriples, Patterns.cjkKana, Patterns.deepseekV3]),
        Definition(names: ["spark2_5"], patterns: [Patterns.numberTriples, Patterns.cjkKana,
                   ##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+"##,
                   Patterns.singleNumber]),
        Definition(names: ["deepseek-llm"], patterns: [
            #"[\r\n]"#,
            #"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+"#,
            #"\s?[!-/:-~！-／：-～‘-‟　-。]+"#,
            #"\s+$"#,
            #"[一-龥ࠀ-一가-퟿]+"#,
            Patterns.numberRun,
        ]),
        Definition(names: ["deepseek-coder"], patterns: [#"[\r\n]"#, #"\s?\p{L}+"#, #"\s?\p{P}+"#, #"[一-龥ࠀ-一가-퟿]+"#, Patterns.singleNumber]),
        Definition(names: ["youtu"], patterns: [
            #"[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+"#,
            #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
        ], ignoreMerges: true),
        // Falcon: Punctuation (contiguous), ByteLevel's GPT-2 pattern, then ASCII digit triples.
        Definition(names: ["falcon"], patterns: [#"[\p{P}\$\+<=>\^~\|`]+"#, Patterns.gpt2, Patterns.asciiDigitTriple]),
        Definition(names: ["poro-chat", "bloom", "gpt3-finnish"], patterns: [Patterns.poro]),
        Definition(names: ["viking"], patterns: [Patterns.poro, Patterns.singleNumber]),
        Definition(names: ["tekken"], patterns: [Patterns.tekken], ignoreMerges: true, addsBos: true),
        Definition(names: ["chameleon"], patterns: [
            #"<sentinel:[0-9]+>"#, #"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z"#, #"([\t\n]|    |  )"#, Patterns.singleNumber,
            #"[\p{P}!-/:-@\[-`{-~]"#, Patterns.gpt2,
        ], addsBos: true),
        Definition(names: ["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"], patterns: [Patterns.gpt4o]),
        // llama.cpp's pattern (the GPT-4o one with marks joining letters).
        Definition(names: ["granite-embed-multi-97m"], patterns: [
            #"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
        ], ignoreMerges: true),
        Definition(names: ["tiny_aya", "cohere2moe"], patterns: [Patterns.digitGroupsBeforeBoundary, Patterns.gpt4o]),
        // Kimi K2 (tiktoken): Han runs first; letters exclude Han.
        Definition(names: ["kimi-k2"], patterns: [
            #"[\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
        ]),
        // SuperBPE: digit runs, then split points every 3 digits from the right (an empty match).
        Definition(names: ["superbpe"], patterns: [Patterns.numberRun, Patterns.digitCutsFromRight]),
        // Ling / LLaDA-MoE: possessive quantifiers, as in the model's tokenizer.json.
        Definition(names: ["bailingmoe", "bailingmoe2", "llada-moe"], patterns: [
            #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"#,
        ]),
        Definition(names: ["seed-coder"], patterns: [#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"#]),
        // Qwen 2's pattern without the English contractions (Turkish suffixes stay attached).
        Definition(names: ["ufakzeka"], patterns: [#"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#]),
        // AFMoE: digit runs in groups of 3 from the right (llama.cpp codes this by hand), Asian scripts,
        // then DeepSeek V3's pattern.
        Definition(names: ["afmoe"], patterns: [
            Patterns.numberGroupsFromRight,
            #"[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+"#,
            Patterns.deepseekV3,
        ]),
        Definition(names: ["laguna"], patterns: [#"[^\n]+|[\n]+"#, Patterns.qwen2]),
        Definition(names: ["exaone-moe"], patterns: [#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+"#]),
    ]

    /// The table as JSON: one object per definition with its names, patterns and flags (for the
    /// fixture script that checks each against Hugging Face `tokenizers`, and for users).
    public static func catalogJSON() -> String {
        let objects: [[String: Any]] = definitions.map { definition in
            ["names": definition.names, "patterns": definition.patterns,
             "ignore_merges": definition.ignoreMerges, "add_bos": definition.addsBos]
        }
        let data = (try? JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Definitions by name.
    public static let definitionsByName: [String: Definition] = {
        var table: [String: Definition] = [:]
        for definition in definitions {
            for name in definition.names {
                precondition(table[name] == nil, "pre-tokenizer \(name) defined twice")
                table[name] = definition
            }
        }
        return table
    }()

    /// The hand-coded scanner for a pattern, where there is one (checked against the pattern itself).
    static func scanner(for pattern: String) -> Rule? {
        switch pattern {
        case Patterns.gpt2: return .gpt2
        case Patterns.llama3: return .llama3
        case Patterns.qwen2: return .qwen2
        case Patterns.deepseekV3: return .deepseekV3
        case Patterns.cjkKana: return .cjkRun
        case Patterns.singleNumber: return .singleNumber
        case Patterns.numberTriples: return .numberTriples
        case Patterns.numberRun: return .numberRun
        case Patterns.asciiDigitTriple: return .asciiDigitTriple
        case Patterns.punctuation: return .punctuationRun
        case Patterns.digitCutsFromRight: return .digitGroups(.cutsFromRight)
        case Patterns.numberGroupsFromRight: return .digitGroups(.groupsFromRight(numbers: true, boundary: false))
        case Patterns.digitGroupsBeforeBoundary: return .digitGroups(.groupsFromRight(numbers: false, boundary: true))
        default: return nil
        }
    }
}
