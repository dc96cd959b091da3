#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Shape of the chat workload. Every field is derived from the command line, and passed verbatim
/// to the recovery child so both processes build the same stream.
struct WorkloadConfig: Sendable, Codable {
    var seed: UInt64
    /// Chats besides the deep chat; their activity is Zipf-skewed.
    var chats: Int
    /// Messages in the ingest stream (deep chat included).
    var messages: Int
    /// "Deep page" depth: the deep-page read fetches 50 messages this many back from the newest.
    var deepOffset: Int
    /// Messages of the deep chat (≥ deepOffset + 50 + jitter), interleaved evenly in the stream.
    var deepChatMessages: Int
    var zipfExponent: Double = 0.99
    /// Fraction of bodies drawn from the long tail (10,000–100,000 characters).
    var tailFraction: Double = 0.001
}

/// One message of the stream, 32 bytes; the body is a slice of the shared text corpus.
struct MessageRecord: Sendable {
    var chatId: Int64
    /// Microseconds since the epoch; strictly increasing over the whole stream.
    var timestamp: Int64
    /// Rendered as 16 lowercase hex characters.
    var messageId: UInt64
    var sender: UInt32
    var bodyOffset: UInt32
    var bodyLength: UInt32
}

/// The seeded chat workload: Zipf-skewed chats, short bodies with a rare very long tail,
/// appends in time order, plus one deep chat for "one million back" paging.
final class Workload: @unchecked Sendable {
    static let idBytes = 16
    static let senderBytes = 7
    static let deepChatId: Int64 = 1
    static let startMicros: Int64 = 1_767_225_600_000_000  // 2026-01-01T00:00:00Z

    let config: WorkloadConfig
    /// Text the message bodies are cut from (word-like, so compression behaves as on real text).
    let corpus: UnsafeBufferPointer<UInt8>
    /// The ingest stream, in time order.
    let messages: [MessageRecord]
    /// Timestamps of the deep chat's messages, oldest first.
    let deepTimestamps: [Int64]
    /// chatIds by Zipf rank (rank 0 is the hottest chat).
    let chatIdsByRank: [Int64]
    let zipf: Zipf
    /// Sum over the stream of key bytes (8 + 8 + id) plus value bytes (sender + body).
    let logicalBytes: UInt64

    init(config: WorkloadConfig) {
        precondition(config.deepChatMessages <= config.messages)
        self.config = config
        var rng = SeededRNG(seed: config.seed)
        let text = Workload.makeCorpus(bytes: 1 << 20, rng: &rng)
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: text.count)
        _ = buffer.initialize(from: text)
        corpus = UnsafeBufferPointer(buffer)
        zipf = Zipf(count: config.chats, exponent: config.zipfExponent)
        // Hot chats get scattered ids, so they are not simply the smallest keys.
        var ids = (0..<config.chats).map { Int64(1_000_000 + $0 * 7) }
        ids.shuffle(using: &rng)
        chatIdsByRank = ids

        var out: [MessageRecord] = []
        out.reserveCapacity(config.messages)
        var deep: [Int64] = []
        deep.reserveCapacity(config.deepChatMessages)
        var ts = Workload.startMicros
        var logical: UInt64 = 0
        let n = config.messages
        let d = config.deepChatMessages
        for i in 0..<n {
            ts += 1 + Int64(rng.next() % 2000)
            // Bresenham interleave: exactly `d` deep-chat messages spread evenly.
            let isDeep = d > 0 && ((i + 1) * d) / n > (i * d) / n
            let chat = isDeep ? Workload.deepChatId : chatIdsByRank[zipf.sample(&rng)]
            if isDeep { deep.append(ts) }
            let m = Workload.makeMessage(
                chat: chat, ts: ts, tailFraction: config.tailFraction,
                corpusCount: text.count, rng: &rng)
            logical += UInt64(Workload.logicalBytes(of: m))
            out.append(m)
        }
        messages = out
        deepTimestamps = deep
        logicalBytes = logical
    }

    deinit { corpus.deallocate() }

    /// Key bytes: chatId 8 B BE | timestamp 8 B BE | messageId.
    static let keyBytes = 16 + idBytes

    /// Logical bytes of one message: key + value (sender length byte, sender, body).
    static func logicalBytes(of m: MessageRecord) -> Int { keyBytes + 1 + senderBytes + Int(m.bodyLength) }

    /// Messages for the durable-write phases (written into fresh stores): the same distribution
    /// of chats and bodies from a separate seed, later in time than the ingest stream.
    func extraMessages(count: Int, stream: UInt64) -> [MessageRecord] {
        var rng = SeededRNG(seed: config.seed ^ (0xD00D_F00D &* (stream + 1)))
        var ts = (messages.last?.timestamp ?? Workload.startMicros) + 1_000_000
        return (0..<count).map { _ in
            ts += 1 + Int64(rng.next() % 2000)
            return Workload.makeMessage(
                chat: chatIdsByRank[zipf.sample(&rng)], ts: ts, tailFraction: config.tailFraction,
                corpusCount: corpus.count, rng: &rng)
        }
    }

    private static func makeMessage(
        chat: Int64, ts: Int64, tailFraction: Double, corpusCount: Int,
        rng: inout SeededRNG
    ) -> MessageRecord {
        let len: Int
        if rng.nextDouble() < tailFraction {
            len = 10_000 + Int(rng.next() % 90_001)
        } else {
            // Log-uniform 20...500: most chat messages are short.
            len = Int(20.0 * pow(25.0, rng.nextDouble()))
        }
        let offset = Int(rng.next() % UInt64(corpusCount - len))
        return MessageRecord(
            chatId: chat, timestamp: ts, messageId: rng.next(),
            sender: UInt32(rng.next() % 1_000_000),
            bodyOffset: UInt32(offset), bodyLength: UInt32(len))
    }

    private static func makeCorpus(bytes: Int, rng: inout SeededRNG) -> [UInt8] {
        let letters = Array("etaoinshrdlucmfwypvbgkjqxz".utf8)
        var words: [[UInt8]] = []
        for _ in 0..<2_000 {
            let len = 1 + Int(rng.next() % 9)
            // Skew toward common letters.
            words.append((0..<len).map { _ in letters[Int(pow(rng.nextDouble(), 2) * Double(letters.count))] })
        }
        let wordZipf = Zipf(count: words.count, exponent: 1.0)
        var out: [UInt8] = []
        out.reserveCapacity(bytes + 16)
        while out.count < bytes {
            out.append(contentsOf: words[wordZipf.sample(&rng)])
            let p = rng.next() % 20
            if p == 0 { out.append(UInt8(ascii: ".")) } else if p == 1 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: " "))
        }
        return Array(out.prefix(bytes))
    }
}

/// Rendering of a message's fields as bytes; shared by every system so all store the same data.
enum MessageCodec {
    private static let hex = Array("0123456789abcdef".utf8)

    /// 16 lowercase hex characters.
    @inline(__always)
    static func writeId(_ id: UInt64, to p: UnsafeMutablePointer<UInt8>) {
        for i in 0..<16 { p[i] = hex[Int((id >> UInt64(60 - 4 * i)) & 0xF)] }
    }

    /// "u" and six decimal digits.
    @inline(__always)
    static func writeSender(_ s: UInt32, to p: UnsafeMutablePointer<UInt8>) {
        p[0] = UInt8(ascii: "u")
        var v = s
        for i in stride(from: 6, through: 1, by: -1) {
            p[i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
        }
    }

    @inline(__always)
    static func writeBE64(_ v: UInt64, to p: UnsafeMutablePointer<UInt8>) {
        for i in 0..<8 { p[i] = UInt8(truncatingIfNeeded: v >> UInt64(56 - 8 * i)) }
    }

    static func idString(_ id: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buf in
            writeId(id, to: buf.baseAddress!)
            return 16
        }
    }

    static func senderString(_ s: UInt32) -> String {
        String(unsafeUninitializedCapacity: 7) { buf in
            writeSender(s, to: buf.baseAddress!)
            return 7
        }
    }
}

/// Per-thread scratch buffers that render the KV-store form of a message:
/// key = chatId 8 B BE | timestamp 8 B BE | messageId (16 B), value = sender length (1 B) | sender | body.
final class KVScratch {
    let key: UnsafeMutablePointer<UInt8>
    let value: UnsafeMutablePointer<UInt8>
    /// A sink for reads, so the compiler cannot drop the bytes a read returns.
    var checksum: UInt64 = 0

    init() {
        key = .allocate(capacity: Workload.keyBytes)
        value = .allocate(capacity: 1 + Workload.senderBytes + 110_000)
    }

    deinit {
        key.deallocate()
        value.deallocate()
    }

    /// Renders `m`; returns the value length (the key is always `Workload.keyBytes`).
    func encode(_ m: MessageRecord, corpus: UnsafeBufferPointer<UInt8>) -> Int {
        MessageCodec.writeBE64(UInt64(bitPattern: m.chatId), to: key)
        MessageCodec.writeBE64(UInt64(bitPattern: m.timestamp), to: key + 8)
        MessageCodec.writeId(m.messageId, to: key + 16)
        value[0] = UInt8(Workload.senderBytes)
        MessageCodec.writeSender(m.sender, to: value + 1)
        let n = Int(m.bodyLength)
        (value + 1 + Workload.senderBytes).update(from: corpus.baseAddress! + Int(m.bodyOffset), count: n)
        return 1 + Workload.senderBytes + n
    }

    /// Touches a returned value (first and last byte, length), as a client reading it would.
    @inline(__always)
    func touch(_ p: UnsafeRawPointer?, _ n: Int) {
        guard let p, n > 0 else { return }
        checksum &+=
            UInt64(n) &+ UInt64(p.load(as: UInt8.self)) &+ UInt64(p.load(fromByteOffset: n - 1, as: UInt8.self))
    }
}
