/// Gemma 4's BPE (GGUF `tokenizer.ggml.model == "gemma4"`), as llama.cpp runs it: vocabulary type BPE
/// with merges from `tokenizer.ggml.merges`, pre-tokenizer type GEMMA4.
///
/// What llama.cpp does (`llama_vocab::impl::tokenize`, `llm_tokenizer_bpe_session::tokenize`):
/// * each text fragment between special tokens has every ASCII space replaced by "▁" (U+2581,
///   `llama_escape_whitespace`, because the GEMMA4 pre-type sets `escape_whitespaces`); no space is
///   prepended (the BPE path never adds a prefix space);
/// * the escaped text is cut by the regex `[^\n]+|[\n]+` into runs of non-newline and of newline
///   characters (`unicode_regex_split_custom_newlines`), with `byte_encode = false`: the runs stay raw
///   UTF-8, no GPT-2 byte alphabet;
/// * a run made only of "\n" that is itself a vocabulary token becomes that token without merges (the
///   "fix for gemma 4", llama.cpp PR 21343); any other run starts as one symbol per UTF-8 character and
///   the merges join the adjacent pair of lowest rank, leftmost first on ties;
/// * a final symbol that is no vocabulary token is written byte by byte as `<0xXX>` tokens; a byte whose
///   `<0xXX>` token is missing is dropped.
///
/// Merging runs in token-id space like `ByteLevelBPE`: strings that a merge mentions but the vocabulary
/// lacks get virtual ids past the vocabulary. A character that is neither a token nor in any merge can
/// never merge; it is kept as a negative symbol holding its byte offset and written as byte tokens.
struct Gemma4BPE: Sendable {
    let merges: MergePairTable
    /// Number of real tokens; ids at or past it are virtual.
    let vocabularySize: Int
    /// Texts of the virtual ids (index id - vocabularySize), to find a character the vocabulary lacks.
    let virtualTable: ByteStringTable
    /// For each virtual id: its bytes as `<0xXX>` tokens (missing ones left out), as llama.cpp writes it.
    let virtualFallback: [[Int32]]
    /// The `<0xXX>` token of each byte, or -1.
    let byteToken: [Int32]

    init(tokenTable: ByteStringTable, merges mergeLines: [String]) {
        vocabularySize = tokenTable.count
        let hex = Array("0123456789ABCDEF".utf8)
        byteToken = (0..<256).map { byte in
            tokenTable.lookup([0x3C, 0x30, 0x78, hex[byte >> 4], hex[byte & 15], 0x3E])  // <0xAB>
        }
        // Gemma's merges spell spaces as "▁", so the separator is the only ASCII space.
        var builder = MergeRuleBuilder(tokenTable: tokenTable)
        let table = builder.table(mergeLines)
        let virtualTexts = builder.virtualTexts
        merges = table
        virtualTable = ByteStringTable(strings: virtualTexts)
        let fallback = byteToken
        virtualFallback = virtualTexts.map { text in text.compactMap { fallback[Int($0)] >= 0 ? fallback[Int($0)] : nil } }
    }

    /// Appends the tokens of `text` (one fragment, spaces already escaped as "▁") to `output`.
    func encode(_ text: UnsafeBufferPointer<UInt8>, _ table: ByteStringTable, _ scratch: inout MergeScratch,
                _ output: inout [Int32]) {
        let count = text.count
        guard count > 0, let base = text.baseAddress else { return }
        var start = 0
        while start < count {
            // One run of "\n" or of anything else.
            let isNewline = base[start] == 0x0A
            var end = start + 1
            while end < count && (base[end] == 0x0A) == isNewline { end += 1 }
            if isNewline {
                let whole = table.lookup(base + start, end - start)
                if whole >= 0 {
                    output.append(whole)
                    start = end
                    continue
                }
            }
            encodeRun(base, start, end, table, &scratch, &output)
            start = end
        }
    }

    /// BPE over `base[start..<end]`: one symbol per UTF-8 character, merges, then the tokens.
    private func encodeRun(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ table: ByteStringTable,
                           _ scratch: inout MergeScratch, _ output: inout [Int32]) {
        scratch.symbols.removeAll(keepingCapacity: true)
        var offset = start
        while offset < end {
            // llama.cpp's unicode_len_utf8: by the lead byte's high nibble (a stray continuation byte is
            // one), cut at the end of the run.
            let lead = base[offset]
            let length = min(lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4, end - offset)
            var id = table.lookup(base + offset, length)
            if id < 0 {
                let virtual = virtualTable.lookup(base + offset, length)
                id = virtual >= 0 ? Int32(vocabularySize) + virtual : -Int32(offset) - 2
            }
            scratch.symbols.append(id)
            offset += length
        }
        let symbolCount = scratch.symbols.count
        scratch.link(count: symbolCount)
        merges.merge(&scratch)
        var index = 0
        while index >= 0 {
            let id = scratch.symbols[index]
            if id >= 0 {
                if Int(id) < vocabularySize {
                    output.append(id)
                } else {
                    output.append(contentsOf: virtualFallback[Int(id) - vocabularySize])
                }
            } else {
                // A character outside vocabulary and merges: its bytes as <0xXX> tokens.
                let at = Int(-(id + 2))
                let lead = base[at]
                let length = min(lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4, end - at)
                for byte in 0..<length {
                    let token = byteToken[Int(base[at + byte])]
                    if token >= 0 { output.append(token) }
                }
            }
            index = Int(scratch.next[index])
        }
    }
}
