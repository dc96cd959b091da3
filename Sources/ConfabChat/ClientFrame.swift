import Foundation

/// What a device sends over the WebSocket: one JSON object per text frame with a string `type`.
enum ClientFrame: Sendable, Hashable {
    case send(chatId: Int64, clientId: String, text: String, retry: Bool)
    case typing(chatId: Int64)
    case read(chatId: Int64, cursor: ReadCursor)
    case sync(cursors: [Int64: Int64], limit: Int?)
    case ping

    /// Parses a frame; `bad_frame` for anything that is not a JSON object with the fields its type
    /// needs, `unknown_type` for a type the server does not know. The error's `ref` (second value)
    /// is the frame's clientId when it had one, so the device can match it to a pending send.
    static func parse(_ text: String) -> Result<ClientFrame, FrameError> {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            return .failure(FrameError(ChatError(.badFrame, "a frame is one JSON object with a \"type\""), ref: nil))
        }
        let ref = object["clientId"] as? String
        func fail(_ message: String) -> Result<ClientFrame, FrameError> {
            .failure(FrameError(ChatError(.badFrame, message), ref: ref))
        }
        guard let type = object["type"] as? String else { return fail("the frame has no string \"type\"") }
        switch type {
        case "send":
            guard let chatId = chatId(object["chatId"]) else { return fail("send needs \"chatId\" (a decimal string)") }
            guard let clientId = ref, !clientId.isEmpty, clientId.utf8.count <= 128 else {
                return fail("send needs \"clientId\": 1 to 128 bytes chosen by the device, the same on retries")
            }
            guard let text = object["text"] as? String else { return fail("send needs \"text\" (a string)") }
            guard let retry = (object["retry"] ?? false) as? Bool else {
                return fail("send's \"retry\" is true or false")
            }
            return .success(.send(chatId: chatId, clientId: clientId, text: text, retry: retry))
        case "typing":
            guard let chatId = chatId(object["chatId"]) else {
                return fail("typing needs \"chatId\" (a decimal string)")
            }
            return .success(.typing(chatId: chatId))
        case "read":
            guard let chatId = chatId(object["chatId"]), let seq = Self.chatId(object["seq"]) else {
                return fail("read needs \"chatId\" and \"seq\" (decimal strings) of the newest message read")
            }
            return .success(.read(chatId: chatId, cursor: ReadCursor(seq: seq)))
        case "sync":
            guard let cursors = Self.cursors(object["cursors"] ?? [String: Any]()) else {
                return fail("sync needs \"cursors\": an object of chatId → seq (decimal strings)")
            }
            return .success(.sync(cursors: cursors, limit: int64(object["limit"] ?? NSNull()).map { Int($0) }))
        case "ping":
            return .success(.ping)
        default:
            return .failure(
                FrameError(
                    ChatError(.unknownType, "unknown frame type \"\(type.prefix(40))\"; see docs/chat_protocol.md"),
                    ref: ref))
        }
    }

    struct FrameError: Error, Hashable {
        var error: ChatError
        var ref: String?
        init(_ error: ChatError, ref: String?) {
            self.error = error
            self.ref = ref
        }
    }

    /// A sync request's cursors: {"<chatId>": "<seq>"}; at most 100,000 chats.
    static func cursors(_ value: Any) -> [Int64: Int64]? {
        guard let object = value as? [String: Any], object.count <= 100_000 else { return nil }
        var out: [Int64: Int64] = [:]
        for (k, v) in object {
            guard let chat = Int64(k), let seq = chatId(v), seq >= 0 else { return nil }
            out[chat] = seq
        }
        return out
    }

    /// Chat ids are decimal strings; plain JSON integers are accepted too.
    static func chatId(_ value: Any?) -> Int64? {
        if let s = value as? String { return Int64(s) }
        return int64(value)
    }

    static func int64(_ value: Any?) -> Int64? {
        if let i = value as? Int64 { return i }
        if let i = value as? Int { return Int64(i) }
        guard let d = value as? Double, d.rounded() == d, abs(d) < 9.2e18 else { return nil }
        return Int64(d)
    }
}
