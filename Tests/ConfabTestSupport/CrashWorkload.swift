import ConfabEngine

/// The crash tests' messages: everything about message `id` (partition, clustering, sender, body)
/// is derived from the id, so a verifier needs only the list of acknowledged ids to know exactly
/// what must be on disk. Bodies are mostly small; about one in forty is 10–100 KB, so memtables
/// fill, flush and compact quickly.
public enum CrashWorkload {
    public static let partitions: Int64 = 97

    public static func chatId(_ id: Int64) -> Int64 { id % partitions }
    public static func messageId(_ id: Int64) -> String { "m\(id)" }
    public static func timestamp(_ id: Int64) -> Int64 { id }
    public static func sender(_ id: Int64) -> String { "s\(id % 13)" }
    /// Cell write time (microseconds): fixed per id, so a rewrite would be idempotent.
    public static func writeTime(_ id: Int64) -> Int64 { 1_700_000_000_000_000 + id }

    public static func bodySize(_ id: Int64) -> Int {
        let h = mix(UInt64(bitPattern: id))
        return h % 40 == 0 ? 10_000 + Int((h >> 8) % 90_001) : 16 + Int((h >> 8) % 300)
    }

    /// "m<id>:" followed by letters from a sequence seeded by the id, `bodySize(id)` bytes long.
    public static func body(_ id: Int64) -> String {
        let size = bodySize(id)
        var bytes = Array("m\(id):".utf8)
        bytes.reserveCapacity(size)
        var state = mix(UInt64(bitPattern: id) ^ 0x9E37_79B9_7F4A_7C15)
        while bytes.count < size {
            state = mix(state)
            var s = state
            for _ in 0..<8 where bytes.count < size {
                bytes.append(UInt8(ascii: "a") + UInt8(s % 26))
                s >>= 8
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func mutation(_ id: Int64) -> Mutation {
        TestMessages.mutation(
            chatId: chatId(id), timestamp: timestamp(id), messageId: messageId(id),
            sender: sender(id), body: body(id), writeTime: writeTime(id))
    }

    /// What is wrong with a row holding these fields as the stored form of message `id`.
    public static func mismatch(messageId: String, timestamp: Int64, sender: String, body: String, id: Int64) -> String?
    {
        let message = (messageId: messageId, timestamp: timestamp, sender: sender, body: body)
        if message.messageId != Self.messageId(id) {
            return "messageId \(message.messageId), expected \(Self.messageId(id))"
        }
        if message.timestamp != Self.timestamp(id) {
            return "timestamp \(message.timestamp), expected \(Self.timestamp(id))"
        }
        if message.sender != Self.sender(id) {
            return "sender \(message.sender.prefix(40)), expected \(Self.sender(id))"
        }
        let body = Self.body(id)
        if message.body != body {
            let a = Array(message.body.utf8)
            let b = Array(body.utf8)
            let at = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
            return "body differs at byte \(at) (\(a.count) bytes, expected \(b.count))"
        }
        return nil
    }

    /// The id in a message id written by this workload.
    public static func id(fromMessageId messageId: String) -> Int64? {
        guard messageId.hasPrefix("m") else { return nil }
        return Int64(messageId.dropFirst())
    }

    /// The id of writer `writer`'s `index`-th message when `writers` threads start at `start`.
    public static func id(start: Int64, writers: Int, writer: Int, index: Int) -> Int64 {
        start + Int64(writer) + Int64(writers) * Int64(index)
    }

    /// SplitMix64 finalizer.
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
