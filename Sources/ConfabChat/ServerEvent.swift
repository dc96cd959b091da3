import Foundation

/// What the server sends a device, over WebSocket (one text frame each) or long polling (an
/// element of `events`). docs/chat_protocol.md lists every field.
public enum ServerEvent: Sendable, Hashable {
    case hello(userId: String, serverId: String)
    case ack(SendAck)
    case message(MessageRecord)
    case typing(chatId: Int64, userId: String)
    case read(chatId: Int64, userId: String, cursor: ReadCursor)
    case presence(PresenceInfo)
    /// The user was added to a chat, or the chat changed (members, title).
    case chat(ChatSummary)
    /// The user left or was removed from a chat.
    case chatRemoved(chatId: Int64)
    case sync(SyncPage)
    /// Live events for this device may have been lost (a peer queue overflowed, a link broke,
    /// routing changed): the device should `sync` with all its cursors.
    case resync
    case pong
    /// `ref` is the clientId (or chatId) the error concerns, when there is one.
    case error(ChatError, ref: String?)

    public var type: String {
        switch self {
        case .hello: return "hello"
        case .ack: return "ack"
        case .message: return "message"
        case .typing: return "typing"
        case .read: return "read"
        case .presence: return "presence"
        case .chat: return "chat"
        case .chatRemoved: return "chat_removed"
        case .sync: return "sync"
        case .resync: return "resync"
        case .pong: return "pong"
        case .error: return "error"
        }
    }

    /// The event as one JSON object (what a WebSocket text frame carries). Flat events are
    /// written by `EventJSONWriter` (the same bytes `JSONEncoder.chat` gives, at a fraction of
    /// the cost); a chat summary and a sync page, which nest arrays, go through `JSONEncoder`.
    public func json() -> String {
        var w = EventJSONWriter()
        switch self {
        case .hello(let userId, let serverId):
            w.string("serverId", serverId)
            w.string("type", type)
            w.string("userId", userId)
        case .ack(let ack):
            w.ackMembers(ack)
            w.string("type", type)
        case .message(let m):
            w.beginObject("message")
            w.decimalString("chatId", m.chatId)
            if let clientId = m.clientId { w.string("clientId", clientId) }
            w.string("messageId", m.messageId)
            w.decimalString("prev", m.prev)
            w.string("sender", m.sender)
            w.decimalString("seq", m.seq)
            w.string("text", m.text)
            w.number("ts", m.ts)
            w.endObject()
            w.string("type", type)
        case .typing(let chatId, let userId):
            w.decimalString("chatId", chatId)
            w.string("type", type)
            w.string("userId", userId)
        case .read(let chatId, let userId, let cursor):
            w.decimalString("chatId", chatId)
            w.decimalString("seq", cursor.seq)
            w.string("type", type)
            w.string("userId", userId)
        case .presence(let p):
            if let lastSeen = p.lastSeen { w.number("lastSeen", lastSeen) }
            w.bool("online", p.online)
            w.string("type", type)
            w.string("userId", p.userId)
        case .chatRemoved(let chatId):
            w.decimalString("chatId", chatId)
            w.string("type", type)
        case .resync, .pong:
            w.string("type", type)
        case .error(let error, let ref):
            w.string("code", error.code.name)
            w.string("message", error.message)
            if let ref { w.string("ref", ref) }
            w.string("type", type)
        case .chat, .sync:
            return encodedByFoundation()
        }
        return w.finish()
    }

    /// The event through `JSONEncoder.chat`: the reference `json()` must match byte for byte.
    func encodedByFoundation() -> String {
        String(decoding: (try? JSONEncoder.chat.encode(self)) ?? Data(#"{"type":"error"}"#.utf8), as: UTF8.self)
    }
}

extension ServerEvent: Encodable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(type, forKey: Key("type"))
        switch self {
        case .hello(let userId, let serverId):
            try c.encode(userId, forKey: Key("userId"))
            try c.encode(serverId, forKey: Key("serverId"))
        case .ack(let ack):
            try c.encode(ack.clientId, forKey: Key("clientId"))
            try c.encode(String(ack.chatId), forKey: Key("chatId"))
            try c.encode(ack.messageId, forKey: Key("messageId"))
            try c.encode(String(ack.seq), forKey: Key("seq"))
            try c.encode(ack.ts, forKey: Key("ts"))
            try c.encode(ack.duplicate, forKey: Key("duplicate"))
        case .message(let m):
            try c.encode(m, forKey: Key("message"))
        case .typing(let chatId, let userId):
            try c.encode(String(chatId), forKey: Key("chatId"))
            try c.encode(userId, forKey: Key("userId"))
        case .read(let chatId, let userId, let cursor):
            try c.encode(String(chatId), forKey: Key("chatId"))
            try c.encode(userId, forKey: Key("userId"))
            try c.encode(String(cursor.seq), forKey: Key("seq"))
        case .presence(let p):
            try c.encode(p.userId, forKey: Key("userId"))
            try c.encode(p.online, forKey: Key("online"))
            try c.encodeIfPresent(p.lastSeen, forKey: Key("lastSeen"))
        case .chat(let chat):
            try c.encode(chat, forKey: Key("chat"))
        case .chatRemoved(let chatId):
            try c.encode(String(chatId), forKey: Key("chatId"))
        case .sync(let page):
            try c.encode(page.messages, forKey: Key("messages"))
            try c.encode(
                Dictionary(uniqueKeysWithValues: page.cursors.map { (String($0.key), String($0.value)) }),
                forKey: Key("cursors"))
            try c.encode(page.more, forKey: Key("more"))
        case .resync, .pong:
            break
        case .error(let error, let ref):
            try c.encode(error.code.name, forKey: Key("code"))
            try c.encode(error.message, forKey: Key("message"))
            try c.encodeIfPresent(ref, forKey: Key("ref"))
        }
    }
}

extension JSONEncoder {
    /// Compact, stable key order (easier to read in logs and tests). One shared instance: an
    /// encoder is safe to use from many tasks at once, and this was a computed property that
    /// built a new encoder for every frame.
    static let chat: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()
}

extension JSONDecoder {
    /// Shared for the same reason as `JSONEncoder.chat`; its options are never changed.
    static let chat = JSONDecoder()
}
