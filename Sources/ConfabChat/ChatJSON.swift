import Foundation

// JSON forms of the chat records (docs/chat_protocol.md). Chat ids travel as decimal strings:
// JavaScript numbers lose precision above 2^53, and chat ids use 63 bits.

extension MessageRecord: Codable {
    enum CodingKeys: String, CodingKey { case chatId, seq, prev, messageId, ts, sender, text, clientId }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            chatId: try c.decodeDecimal(.chatId), seq: try c.decodeDecimal(.seq), prev: try c.decodeDecimal(.prev),
            messageId: try c.decode(String.self, forKey: .messageId), ts: try c.decode(Int64.self, forKey: .ts),
            sender: try c.decode(String.self, forKey: .sender), text: try c.decode(String.self, forKey: .text),
            clientId: try c.decodeIfPresent(String.self, forKey: .clientId))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(String(chatId), forKey: .chatId)
        try c.encode(String(seq), forKey: .seq)
        try c.encode(String(prev), forKey: .prev)
        try c.encode(messageId, forKey: .messageId)
        try c.encode(ts, forKey: .ts)
        try c.encode(sender, forKey: .sender)
        try c.encode(text, forKey: .text)
        try c.encodeIfPresent(clientId, forKey: .clientId)
    }
}

extension ReadCursor: Codable {
    enum CodingKeys: String, CodingKey { case seq }
    public init(from decoder: any Decoder) throws {
        self.init(seq: try decoder.container(keyedBy: CodingKeys.self).decodeDecimal(.seq))
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(String(seq), forKey: .seq)
    }
}

extension KeyedDecodingContainer {
    /// Chat ids and seqs travel as decimal strings (JavaScript numbers lose precision above 2^53);
    /// plain integers are accepted too.
    func decodeDecimal(_ key: Key) throws -> Int64 {
        if let s = try? decode(String.self, forKey: key), let v = Int64(s) { return v }
        if let v = try? decode(Int64.self, forKey: key) { return v }
        throw DecodingError.dataCorruptedError(
            forKey: key, in: self, debugDescription: "\(key.stringValue) is not a decimal string")
    }
}

/// A chat as a user sees it: in the chat list, in answers to create/add/remove, in `chat` events.
public struct ChatSummary: Sendable, Hashable, Codable {
    public var chatId: Int64
    public var kind: ChatKind
    /// The group's title; for a direct chat, the other member's handle.
    public var title: String
    public var members: [String]
    public var createdBy: String
    public var lastMessage: MessageRecord?
    /// The viewer's unread messages from others, counted up to 100 (show "99+" from 100 on).
    public var unread: Int
    /// The viewer's read cursor, if they have read anything.
    public var readCursor: ReadCursor?
    /// The other members' read cursors (seq), for "seen" marks on a freshly loaded page.
    public var readers: [String: Int64]

    enum CodingKeys: String, CodingKey {
        case chatId, kind, title, members, createdBy, lastMessage, unread, readCursor, readers
    }

    public init(
        chatId: Int64, kind: ChatKind, title: String, members: [String], createdBy: String,
        lastMessage: MessageRecord? = nil, unread: Int = 0, readCursor: ReadCursor? = nil,
        readers: [String: Int64] = [:]
    ) {
        self.chatId = chatId
        self.kind = kind
        self.title = title
        self.members = members
        self.createdBy = createdBy
        self.lastMessage = lastMessage
        self.unread = unread
        self.readCursor = readCursor
        self.readers = readers
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard let id = Int64(try c.decode(String.self, forKey: .chatId)) else {
            throw DecodingError.dataCorruptedError(
                forKey: .chatId, in: c, debugDescription: "chatId is not a decimal string")
        }
        self.init(
            chatId: id, kind: try c.decode(ChatKind.self, forKey: .kind),
            title: try c.decode(String.self, forKey: .title),
            members: try c.decode([String].self, forKey: .members),
            createdBy: try c.decode(String.self, forKey: .createdBy),
            lastMessage: try c.decodeIfPresent(MessageRecord.self, forKey: .lastMessage),
            unread: try c.decode(Int.self, forKey: .unread),
            readCursor: try c.decodeIfPresent(ReadCursor.self, forKey: .readCursor),
            readers: (try c.decodeIfPresent([String: String].self, forKey: .readers) ?? [:]).compactMapValues {
                Int64($0)
            })
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(String(chatId), forKey: .chatId)
        try c.encode(kind, forKey: .kind)
        try c.encode(title, forKey: .title)
        try c.encode(members, forKey: .members)
        try c.encode(createdBy, forKey: .createdBy)
        try c.encodeIfPresent(lastMessage, forKey: .lastMessage)
        try c.encode(unread, forKey: .unread)
        try c.encodeIfPresent(readCursor, forKey: .readCursor)
        if !readers.isEmpty { try c.encode(readers.mapValues { String($0) }, forKey: .readers) }
    }
}

/// One page of catch-up over all the user's chats: for each chat, the messages after the
/// device's cursor, oldest first (docs/chat_protocol.md, "Catch-up").
public struct SyncPage: Sendable, Hashable {
    public var messages: [MessageRecord]
    /// For every chat of the user: the seq up to which the device now holds every message. Pass
    /// them as the next request's cursors.
    public var cursors: [Int64: Int64]
    /// True when some chat has more messages after its cursor: ask again.
    public var more: Bool
}

extension SyncPage: Encodable {
    enum CodingKeys: String, CodingKey { case messages, cursors, more }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(messages, forKey: .messages)
        try c.encode(
            Dictionary(uniqueKeysWithValues: cursors.map { (String($0.key), String($0.value)) }), forKey: .cursors)
        try c.encode(more, forKey: .more)
    }
}

/// A page of one chat's history, newest first.
public struct HistoryPage: Sendable, Hashable, Codable {
    public var messages: [MessageRecord]
    /// True when older messages exist: ask again with before/beforeId of the last (oldest) one.
    public var more: Bool
}

/// Whether a user is online (on the server that owns them), and when they were last seen.
public struct PresenceInfo: Sendable, Hashable, Codable {
    public var userId: String
    public var online: Bool
    /// Unix milliseconds of the last disconnect (or now while online); nil if never seen since
    /// this server started — presence is not stored.
    public var lastSeen: Int64?
}
