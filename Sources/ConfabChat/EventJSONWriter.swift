/// Writes the JSON text of a flat server event without `JSONEncoder`.
///
/// Why: every message a device receives and every send it makes is one event, and at 2,000
/// messages/s `JSONEncoder` (its boxing, key sorting and a fresh encoder per call) and the
/// `Data` → `String` copy after it were 8–10 % of each chat server's CPU. The bytes must be exactly
/// what `JSONEncoder.chat` writes (compact, keys in byte order, `/` unescaped, control characters
/// as `\b \t \n \f \r` or `\u00xx`), so a client cannot tell the two apart;
/// `ServerEventJSONTests` compares them byte for byte. Callers add keys in byte order.
struct EventJSONWriter {
    private var bytes: [UInt8] = []
    /// Whether the object being written still has no member (no comma before the next key).
    private var empty = true

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    mutating func string(_ key: StaticString, _ value: String) {
        self.key(key)
        quoted(value)
    }

    /// An Int64 written as a JSON string: chat ids and seqs exceed 2^53, which JavaScript's
    /// numbers cannot hold exactly (docs/chat_protocol.md).
    mutating func decimalString(_ key: StaticString, _ value: Int64) {
        self.key(key)
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: String(value).utf8)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func number(_ key: StaticString, _ value: Int64) {
        self.key(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func bool(_ key: StaticString, _ value: Bool) {
        self.key(key)
        bytes.append(contentsOf: value ? "true".utf8 : "false".utf8)
    }

    mutating func beginObject(_ key: StaticString) {
        self.key(key)
        bytes.append(UInt8(ascii: "{"))
        empty = true
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        empty = false
    }

    /// An ack's members (a device's `ack` event and the peer link's `result` frame carry the
    /// same ones); the caller adds any key after `ts`.
    mutating func ackMembers(_ a: SendAck) {
        decimalString("chatId", a.chatId)
        string("clientId", a.clientId)
        bool("duplicate", a.duplicate)
        string("messageId", a.messageId)
        decimalString("seq", a.seq)
        number("ts", a.ts)
    }

    /// Closes the outermost object and returns the text.
    mutating func finish() -> String {
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    private mutating func key(_ key: StaticString) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func quoted(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { escape($0) }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Copies runs that need no escape in one append each; only `"`, `\` and bytes below 0x20
    /// are escaped (UTF-8 continuation and lead bytes are all ≥ 0x80, so they pass through).
    private mutating func escape(_ utf8: UnsafeBufferPointer<UInt8>) {
        var runStart = 0
        for i in 0..<utf8.count {
            let b = utf8[i]
            guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i]))
            runStart = i + 1
            bytes.append(UInt8(ascii: "\\"))
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(b)
            case 0x08: bytes.append(UInt8(ascii: "b"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0C: bytes.append(UInt8(ascii: "f"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            default:
                let hex: StaticString = "0123456789abcdef"
                bytes.append(UInt8(ascii: "u"))
                bytes.append(UInt8(ascii: "0"))
                bytes.append(UInt8(ascii: "0"))
                hex.withUTF8Buffer {
                    bytes.append($0[Int(b >> 4)])
                    bytes.append($0[Int(b & 0xF)])
                }
            }
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
    }
}
