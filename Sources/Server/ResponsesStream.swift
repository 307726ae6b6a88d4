// The Responses API's streamed events (see ResponsesAPI.swift for their order).

import Engine
import Foundation
import Hummingbird

/// Builds the typed events of one streamed response: sequence numbers, output indices and the items
/// finished so far (for the final response object).
struct ResponsesEventWriter {
    private(set) var sequence = 0
    private(set) var output: [[String: Any]] = []
    /// The open text item: its id and the text so far.
    private(set) var textItem: (id: String, text: String)?
    /// The open function call item.
    private(set) var callItem: (id: String, callID: String, name: String, arguments: String)?

    mutating func event(_ type: String, _ fields: [String: Any]) -> ByteBuffer {
        var object = fields
        object["type"] = type
        object["sequence_number"] = sequence
        sequence += 1
        return APIServer.sse(object, event: type)
    }

    mutating func openText() -> [ByteBuffer] {
        let id = APIServer.randomID("msg_")
        textItem = (id, "")
        return [event("response.output_item.added", ["output_index": output.count,
                                                     "item": APIServer.messageItem(id: id, text: "", status: "in_progress")]),
                event("response.content_part.added", ["item_id": id, "output_index": output.count, "content_index": 0,
                                                      "part": APIServer.outputTextPart("")])]
    }

    mutating func textDelta(_ text: String) -> [ByteBuffer] {
        var buffers: [ByteBuffer] = []
        if textItem == nil { buffers += openText() }
        guard !text.isEmpty, let item = textItem else { return buffers }
        textItem = (item.id, item.text + text)
        buffers.append(event("response.output_text.delta", ["item_id": item.id, "output_index": output.count, "content_index": 0,
                                                            "delta": text, "logprobs": [Any]()]))
        return buffers
    }

    mutating func closeText() -> [ByteBuffer] {
        guard let item = textItem else { return [] }
        let index = output.count
        let done = APIServer.messageItem(id: item.id, text: item.text, status: "completed")
        output.append(done)
        textItem = nil
        return [event("response.output_text.done", ["item_id": item.id, "output_index": index, "content_index": 0, "text": item.text,
                                                    "logprobs": [Any]()]),
                event("response.content_part.done", ["item_id": item.id, "output_index": index, "content_index": 0,
                                                     "part": APIServer.outputTextPart(item.text)]),
                event("response.output_item.done", ["output_index": index, "item": done])]
    }

    mutating func openCall(callID: String, name: String) -> ByteBuffer {
        let id = APIServer.randomID("fc_")
        callItem = (id, callID, name, "")
        return event("response.output_item.added", ["output_index": output.count,
                                                    "item": APIServer.functionCallItem(id: id, callID: callID, name: name, arguments: "", status: "in_progress")])
    }

    mutating func callDelta(_ arguments: String) -> ByteBuffer? {
        guard !arguments.isEmpty, let item = callItem else { return nil }
        callItem = (item.id, item.callID, item.name, item.arguments + arguments)
        return event("response.function_call_arguments.delta", ["item_id": item.id, "output_index": output.count, "delta": arguments])
    }

    mutating func closeCall() -> [ByteBuffer] {
        guard let item = callItem else { return [] }
        let index = output.count
        let done = APIServer.functionCallItem(id: item.id, callID: item.callID, name: item.name, arguments: item.arguments, status: "completed")
        output.append(done)
        callItem = nil
        return [event("response.function_call_arguments.done", ["item_id": item.id, "output_index": index, "name": item.name,
                                                                "arguments": item.arguments]),
                event("response.output_item.done", ["output_index": index, "item": done])]
    }

    /// The answer as a chat message (for the store): the text, or the calls.
    var answer: ChatMessage {
        var message = ChatMessage(role: "assistant", content: "")
        for item in output {
            if item["type"] as? String == "function_call" {
                message.toolCalls.append(ToolCall(id: item["call_id"] as? String ?? "", name: item["name"] as? String ?? "",
                                                  arguments: item["arguments"] as? String ?? "{}"))
            } else if let parts = item["content"] as? [[String: Any]] {
                message.content += parts.compactMap { $0["text"] as? String }.joined()
            }
        }
        return message
    }
}

extension APIServer {
    func streamResponses(_ request: GenerationRequest, _ handle: EngineHandle) -> Response {
        let stream = events(handle)
        return Response(status: .ok, headers: APIServer.sseHeaders, body: ResponseBody { writer in
            defer { handle.cancel() }
            var events = ResponsesEventWriter()
            func send(_ buffers: [ByteBuffer]) async throws {
                for buffer in buffers { try await writer.write(buffer) }
            }
            let started = self.responseObject(request, status: "in_progress", output: [], finish: nil)
            try await send([events.event("response.created", ["response": started]),
                            events.event("response.in_progress", ["response": started])])
            var (streamer, holding) = request.toolStreaming
            var held = ""
            for await item in stream {
                switch item {
                case .keepAlive, .event(.promptProgress):
                    try await writer.write(APIServer.keepAliveComment)
                case .event(.text(let text, _)):
                    if var s = streamer {
                        let (name, arguments) = s.push(text)
                        streamer = s
                        if let name { try await send([events.openCall(callID: APIServer.randomID("call_"), name: name)]) }
                        if let delta = events.callDelta(arguments) { try await send([delta]) }
                    } else if holding {
                        held += text
                        if !APIServer.mayBeToolCall(held) {
                            holding = false
                            try await send(events.textDelta(held))
                        }
                    } else {
                        try await send(events.textDelta(text))
                    }
                case .event(.finished(let f)):
                    if var s = streamer {
                        if let delta = events.callDelta(s.finish()) { try await send([delta]) }
                        try await send(events.closeCall())
                    } else if holding, let tools = request.tools {
                        let calls = APIServer.parseToolCalls(held, tools: tools)
                        for call in calls {
                            try await send([events.openCall(callID: call.id, name: call.name)])
                            if let delta = events.callDelta(call.arguments) { try await send([delta]) }
                            try await send(events.closeCall())
                        }
                        if calls.isEmpty { try await send(events.textDelta(held)) }
                    }
                    if events.output.isEmpty && events.textItem == nil && events.callItem == nil { try await send(events.textDelta("")) }
                    try await send(events.closeText())
                    let status = APIServer.responsesStatus(f)
                    let object = self.responseObject(request, status: status, output: events.output, finish: f)
                    self.storeResponse(request, answer: events.answer, object: object)
                    try await send([events.event(status == "completed" ? "response.completed" : "response.incomplete", ["response": object])])
                case .event(.failed(let message)):
                    try await send([events.event("error", ["code": "server_error", "message": message, "param": NSNull()])])
                }
            }
            try await writer.finish(nil)
        })
    }
}
