// POST /tokenize and POST /detokenize, in llama-server's request and response shapes, so a client can
// check what the engine sees of a text.
//
//   /tokenize    {"content": "text", "add_special": false, "parse_special": true, "with_pieces": false}
//                → {"tokens": [ids]}, or with_pieces {"tokens": [{"id": 15, "piece": "text" | [bytes]}]}
//   /detokenize  {"tokens": [ids]} → {"content": "text"}

import Foundation
import Hummingbird

extension APIServer {
    func tokenize(_ body: JSONBody) throws -> Response {
        guard let content = try body.string("content") else {
            throw APIError.invalid(body.has("content") ? "'content' must be a string" : "'content' is required", param: "content")
        }
        let tokenizer = engine.loaded.tokenizer
        let ids = tokenizer.encode(content, addSpecial: try body.bool("add_special") ?? false,
                                   parseSpecial: try body.bool("parse_special") ?? true)
        guard try body.bool("with_pieces") ?? false else { return json(["tokens": ids.map { Int($0) }]) }
        let tokens: [[String: Any]] = ids.map { id in
            let bytes = tokenizer.tokenPiece(id)
            // A piece that is not whole UTF-8 (part of a character) goes as its bytes, as llama-server sends it.
            let piece: Any = String(validating: bytes, as: UTF8.self) ?? bytes.map { Int($0) }
            return ["id": Int(id), "piece": piece]
        }
        return json(["tokens": tokens])
    }

    func detokenize(_ body: JSONBody) throws -> Response {
        guard let values = try body.array("tokens") else { throw APIError.invalid("'tokens' is required", param: "tokens") }
        let size = engine.loaded.tokenizer.vocabularySize
        var ids: [Int32] = []
        ids.reserveCapacity(values.count)
        for (index, value) in values.enumerated() {
            guard let number = value as? NSNumber, !JSONBody.isBool(number), number.doubleValue == number.doubleValue.rounded(),
                  number.doubleValue >= 0, number.doubleValue < Double(size) else {
                throw APIError.invalid("'tokens'[\(index)] must be a token id between 0 and \(size - 1), got \(value)", param: "tokens")
            }
            ids.append(Int32(number.intValue))
        }
        return json(["content": engine.loaded.tokenizer.decode(ids)])
    }
}
