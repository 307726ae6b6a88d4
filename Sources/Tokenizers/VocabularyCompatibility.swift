// Whether two vocabularies spell every token alike, so that token ids of one model mean the same text in
// the other (a draft model for speculative decoding). The rule follows llama.cpp's draft check: the same
// tokenization algorithm, the same BOS/EOS, sizes within 128 of each other (models pad their vocabulary
// differently), and identical token bytes and types over the ids both have.

extension Tokenizer {
    /// The largest difference in vocabulary size two compatible models may have.
    public static let compatibleSizeDifference = 128

    private var algorithmName: String {
        switch algorithm {
        case .byteLevel: return "byte-level BPE"
        case .sentencePiece: return "SentencePiece"
        case .gemma4: return "Gemma 4 BPE"
        }
    }

    /// nil when ids from `other` can be fed to this tokenizer's model and back; else why not.
    public func compatibilityProblem(with other: Tokenizer) -> String? {
        if algorithmName != other.algorithmName {
            return "tokenizers differ (\(algorithmName) vs \(other.algorithmName))"
        }
        if abs(vocabularySize - other.vocabularySize) > Tokenizer.compatibleSizeDifference {
            return "vocabulary sizes differ by more than \(Tokenizer.compatibleSizeDifference) (\(vocabularySize) vs \(other.vocabularySize))"
        }
        if bosId != other.bosId || eosId != other.eosId || addsBosToken != other.addsBosToken {
            return "BOS/EOS tokens differ (bos \(bosId.map(String.init) ?? "none") vs \(other.bosId.map(String.init) ?? "none"), eos \(eosId.map(String.init) ?? "none") vs \(other.eosId.map(String.init) ?? "none"))"
        }
        for id in 0..<Int32(min(vocabularySize, other.vocabularySize)) {
            if tokenPiece(id) != other.tokenPiece(id) || tokenTypes[Int(id)] != other.tokenTypes[Int(id)] {
                return "token \(id) differs (\(String(decoding: tokenPiece(id), as: UTF8.self).debugDescription) vs \(String(decoding: other.tokenPiece(id), as: UTF8.self).debugDescription))"
            }
        }
        return nil
    }
}
