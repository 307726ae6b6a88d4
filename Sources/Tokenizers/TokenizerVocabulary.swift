/// The tokenizer description a GGUF file carries under `tokenizer.ggml.*`, already read out of the
/// file. The tokenizer never reads a GGUF itself: whoever owns the file fills this in.
public struct TokenizerVocabulary: Sendable {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE), "llama" (SentencePiece BPE) or "gemma4" (Gemma 4's
    /// BPE over "▁"-escaped UTF-8 with `<0xAB>` byte fallback).
    public var model: String
    /// `tokenizer.ggml.pre`: the pre-tokenizer of a byte-level BPE vocabulary ("smollm", "llama3", "qwen2", ...);
    /// ignored for "gemma4", whose pre-tokenizer is fixed (as in llama.cpp).
    public var pre: String?
    /// `tokenizer.ggml.tokens`: token text by id.
    public var tokens: [String]
    /// `tokenizer.ggml.scores`: SentencePiece merge priority by id (higher merges first).
    public var scores: [Float]?
    /// `tokenizer.ggml.token_type` by id (see `TokenType`).
    public var tokenTypes: [Int32]?
    /// `tokenizer.ggml.merges`: "left right" pairs, best first.
    public var merges: [String]?
    public var bosId: Int?
    public var eosId: Int?
    public var unknownId: Int?
    public var paddingId: Int?
    public var eotId: Int?
    public var addBos: Bool?
    public var addEos: Bool?
    public var addSpacePrefix: Bool?

    public init(
        model: String, pre: String? = nil, tokens: [String], scores: [Float]? = nil, tokenTypes: [Int32]? = nil,
        merges: [String]? = nil, bosId: Int? = nil, eosId: Int? = nil, unknownId: Int? = nil,
        paddingId: Int? = nil, eotId: Int? = nil, addBos: Bool? = nil, addEos: Bool? = nil,
        addSpacePrefix: Bool? = nil
    ) {
        self.model = model
        self.pre = pre
        self.tokens = tokens
        self.scores = scores
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.bosId = bosId
        self.eosId = eosId
        self.unknownId = unknownId
        self.paddingId = paddingId
        self.eotId = eotId
        self.addBos = addBos
        self.addEos = addEos
        self.addSpacePrefix = addSpacePrefix
    }
}

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
public enum TokenType: Int32, Sendable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unsupportedModel(String)
    case unsupportedPreTokenizer(String)
    case emptyVocabulary
    case missingMerges
    case lengthMismatch(field: String, expected: Int, actual: Int)
    case tokenIdOutOfRange(field: String, id: Int, vocabularySize: Int)

    public var description: String {
        switch self {
        case .unsupportedModel(let name):
            return "tokenizer.ggml.model '\(name)' is not supported (supported: 'gpt2' byte-level BPE, 'llama' SentencePiece, 'gemma4')"
        case .unsupportedPreTokenizer(let name):
            return "tokenizer.ggml.pre '\(name)' is not supported (this build knows \(PreTokenizer.supportedNames.count) pre-tokenizers: `dwarfstar tokenize --list-pre-tokenizers`)"
        case .emptyVocabulary:
            return "tokenizer.ggml.tokens is empty"
        case .missingMerges:
            return "tokenizer.ggml.merges is missing: a 'gpt2' (byte-level BPE) or 'gemma4' vocabulary needs its merges"
        case .lengthMismatch(let field, let expected, let actual):
            return "\(field) has \(actual) entries, expected one per token (\(expected))"
        case .tokenIdOutOfRange(let field, let id, let size):
            return "\(field) = \(id) is outside the vocabulary (\(size) tokens)"
        }
    }
}
