// The Responses API's stored responses: what `previous_response_id` continues from (the conversation so
// far, without that request's `instructions`) and what GET /v1/responses/{id} returns. Bounded by count
// and by bytes; the least recently used go first. The conversation is rendered again for a follow-up, so
// its prompt starts with the tokens of the stored turn, and the prefix cache serves their KV pages.

import Engine
import Foundation

final class ResponseStore: @unchecked Sendable {
    struct Entry {
        /// Every message of the conversation, the answer included (tool calls as an assistant message).
        var conversation: [ChatMessage]
        /// The response object as answered.
        var response: [String: Any]
        var bytes: Int
    }

    let maxEntries: Int
    let maxBytes: Int
    private var entries: [String: Entry] = [:]
    /// Ids from least to most recently used.
    private var order: [String] = []
    private var bytes = 0
    private let lock = NSLock()

    init(maxEntries: Int, maxBytes: Int) {
        self.maxEntries = max(1, maxEntries)
        self.maxBytes = max(1, maxBytes)
    }

    func store(id: String, conversation: [ChatMessage], response: [String: Any]) {
        let size = conversation.reduce(0) { $0 + $1.textBytes + 64 } + jsonData(response).count
        lock.lock()
        defer { lock.unlock() }
        guard size <= maxBytes else { return }   // larger than the whole store: not kept
        removeLocked(id)
        entries[id] = Entry(conversation: conversation, response: response, bytes: size)
        order.append(id)
        bytes += size
        while entries.count > maxEntries || bytes > maxBytes, let oldest = order.first {
            removeLocked(oldest)
        }
    }

    func entry(_ id: String) -> Entry? {
        lock.lock()
        defer { lock.unlock() }
        guard let entry = entries[id] else { return nil }
        if let index = order.firstIndex(of: id) {
            order.remove(at: index)
            order.append(id)
        }
        return entry
    }

    @discardableResult
    func remove(_ id: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return removeLocked(id)
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return entries.count
    }

    @discardableResult
    private func removeLocked(_ id: String) -> Bool {
        guard let entry = entries.removeValue(forKey: id) else { return false }
        bytes -= entry.bytes
        if let index = order.firstIndex(of: id) { order.remove(at: index) }
        return true
    }
}
