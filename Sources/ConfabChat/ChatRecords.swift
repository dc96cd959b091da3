/// A chat is direct (exactly two members, id derived from them) or a group (up to 100 members).
public enum ChatKind: String, Codable, Sendable, Hashable {
    case direct
    case group
}

/// A member's role in a group: the creator is its `owner` (may remove anyone), everyone else a
/// `member` (may add people and leave). Both members of a direct chat are `member`s.
public enum MemberRole: String, Codable, Sendable, Hashable {
    case owner
    case member
}

/// `chat.users` row.
struct UserRecord: Sendable, Hashable {
    var userId: String
    var passwordHash: String
    var createdAt: Int64
}

/// A user's registration with its current credentials: the password hash and token generation
/// of the credentials row when that row belongs to this registration, else the registration's
/// own hash and generation 0.
struct UserCredentials: Sendable, Hashable {
    var registration: UserRecord
    var passwordHash: String
    var generation: Int64
}

/// `chat.chats` row.
struct ChatRecord: Sendable, Hashable {
    var chatId: Int64
    var kind: ChatKind
    var title: String
    var createdBy: String
    var createdAt: Int64
}

/// `chat.chat_members` row.
struct MemberRecord: Sendable, Hashable {
    var userId: String
    var role: MemberRole
    var joinedAt: Int64
}

/// `chat.user_chats` row: enough to list a user's chats without reading every chat.
struct UserChatRecord: Sendable, Hashable {
    var chatId: Int64
    var kind: ChatKind
    var title: String
    var joinedAt: Int64
}

/// A member's read cursor: every message of the chat with seq <= `seq` is read.
public struct ReadCursor: Sendable, Hashable {
    public var seq: Int64

    public init(seq: Int64) { self.seq = seq }
}

/// A message as the chat server stores and sends it. Messages order by `seq` in every chat, on
/// every device: the chat's owner server assigns it (docs/chat_ordering.md).
public struct MessageRecord: Sendable, Hashable {
    public var chatId: Int64
    /// The message's place in its chat: epoch * 2^32 + n, strictly increasing in chat order.
    public var seq: Int64
    /// The seq of the message just before this one in the chat (0 for the first): a device that
    /// holds `prev` and gets this message holds the chat without a gap.
    public var prev: Int64
    /// Derived from (chat, sender, clientId): the same for every attempt of one send.
    public var messageId: String
    /// Microseconds since the Unix epoch on the clock of the server that placed the message: for
    /// display only, never for order.
    public var ts: Int64
    public var sender: String
    public var text: String
    /// The id the sending device chose (idempotent retries); nil for messages written by other tools.
    public var clientId: String?

    public init(
        chatId: Int64, seq: Int64, prev: Int64, messageId: String, ts: Int64, sender: String, text: String,
        clientId: String?
    ) {
        self.chatId = chatId
        self.seq = seq
        self.prev = prev
        self.messageId = messageId
        self.ts = ts
        self.sender = sender
        self.text = text
        self.clientId = clientId
    }

    /// True when `self` comes before `other` in chat order.
    func precedes(_ other: MessageRecord) -> Bool { (chatId, seq) < (other.chatId, other.seq) }
}

/// What a sender gets back for an accepted message (also for a retry of one).
public struct SendAck: Sendable, Hashable {
    public var chatId: Int64
    public var messageId: String
    public var seq: Int64
    public var ts: Int64
    public var clientId: String
    /// True when this send repeated an earlier one with the same client id: nothing new was stored.
    public var duplicate: Bool
}

extension MessageRecord {
    /// At least the bytes this message takes in a JSON answer (`EventJSONWriter` or
    /// `JSONEncoder.chat`): its strings as those escape them (a control character as `\u00XX`,
    /// a quote, backslash or slash with a backslash, the rest as UTF-8) and 320 bytes for the keys
    /// and numbers. What bounds a sync answer (`Limits.maxSyncBytes`).
    var jsonBytesBound: Int {
        320 + Self.escapedBytesBound(text) + Self.escapedBytesBound(sender) + Self.escapedBytesBound(messageId)
            + (clientId.map(Self.escapedBytesBound) ?? 0)
    }

    static func escapedBytesBound(_ s: String) -> Int {
        var n = 0
        for b in s.utf8 {
            if b < 0x20 {
                n += 6
            } else if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b == UInt8(ascii: "/") {
                n += 2
            } else {
                n += 1
            }
        }
        return n
    }
}
