import ConfabTestSupport
import Foundation
import Testing

@testable import ConfabChat

/// `ServerEvent.json()` writes flat events by hand; these hold it to the bytes `JSONEncoder.chat`
/// writes for the same event, so a client cannot tell which one wrote a frame.
@Suite struct ServerEventJSONTests {
    /// Strings that exercise every escape: all control characters, quote, backslash, slash, DEL,
    /// U+2028, multi-byte scalars and the empty string, in random mixes.
    static func text(_ rng: inout SplitMix64) -> String {
        let pieces: [String] = [
            "", "a", "hello world", "\"", "\\", "/", "\u{7F}", "\u{2028}", "é", "😀", "中文", "\u{0}", "\u{1F}",
            "\u{8}", "\u{9}", "\u{A}", "\u{B}", "\u{C}", "\u{D}", "\u{1B}", "</script>", "\\u0000",
        ]
        var s = ""
        for _ in 0..<Int.random(in: 0...8, using: &rng) {
            if Bool.random(using: &rng) {
                s.unicodeScalars.append(Unicode.Scalar(UInt8.random(in: 0...0x7F, using: &rng)))
            } else {
                s += pieces.randomElement(using: &rng)!
            }
        }
        return s
    }

    static func int(_ rng: inout SplitMix64) -> Int64 {
        [Int64.min, Int64.max, 0, -1, 1, 1 << 53, Int64.random(in: .min ... .max, using: &rng)]
            .randomElement(using: &rng)!
    }

    private static func event(_ rng: inout SplitMix64) -> ServerEvent {
        func t() -> String { text(&rng) }
        func i() -> Int64 { int(&rng) }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: return .hello(userId: t(), serverId: t())
        case 1:
            return .ack(
                SendAck(
                    chatId: i(), messageId: t(), seq: i(), ts: i(), clientId: t(), duplicate: Bool.random(using: &rng)))
        case 2:
            return .message(
                MessageRecord(
                    chatId: i(), seq: i(), prev: i(), messageId: t(), ts: i(), sender: t(), text: t(),
                    clientId: Bool.random(using: &rng) ? t() : nil))
        case 3: return .typing(chatId: i(), userId: t())
        case 4: return .read(chatId: i(), userId: t(), cursor: ReadCursor(seq: i()))
        case 5:
            return .presence(
                PresenceInfo(
                    userId: t(), online: Bool.random(using: &rng), lastSeen: Bool.random(using: &rng) ? i() : nil))
        case 6: return .chatRemoved(chatId: i())
        case 7: return Bool.random(using: &rng) ? .resync : .pong
        default:
            let codes: [ChatError.Code] = [.badRequest, .notAMember, .messageTooLong, .rateLimited]
            return .error(
                ChatError(codes.randomElement(using: &rng)!, t()), ref: Bool.random(using: &rng) ? t() : nil)
        }
    }

    @Test(arguments: [1, 2, 3, 0xC0FFEE] as [UInt64])
    func flatEventsMatchJSONEncoderByteForByte(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for n in 0..<2_000 {
            let e = Self.event(&rng)
            let fast = e.json()
            let reference = e.encodedByFoundation()
            guard fast == reference else {
                Issue.record(
                    "seed \(seed), event \(n) (\(e.type)):\n  json():      \(fast)\n  JSONEncoder: \(reference)")
                return
            }
        }
    }

    /// `MessageRecord.jsonBytesBound`, what keeps a sync answer under `Limits.maxSyncBytes`, is
    /// at least what either writer makes of a message, alone or in a sync page; and for plain
    /// text it is the text's length and a little, so a page of large messages holds as many as fit.
    @Test(arguments: [5, 6, 0x5EED] as [UInt64])
    func aMessagesByteBoundCoversItsJSON(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let emptyPage = ServerEvent.sync(SyncPage(messages: [], cursors: [:], more: false)).json().utf8.count
        let emptyTyping = ServerEvent.typing(chatId: 1, userId: "").json().utf8.count
        for n in 0..<2_000 {
            let m = MessageRecord(
                chatId: Self.int(&rng), seq: Self.int(&rng), prev: Self.int(&rng), messageId: Self.text(&rng),
                ts: Self.int(&rng), sender: Self.text(&rng), text: Self.text(&rng),
                clientId: Bool.random(using: &rng) ? Self.text(&rng) : nil)
            // Each string on its own, so the 320 bytes of slack cannot hide a string's escape.
            let s = Self.text(&rng)
            let escaped = ServerEvent.typing(chatId: 1, userId: s).json().utf8.count - emptyTyping
            guard MessageRecord.escapedBytesBound(s) >= escaped else {
                Issue.record(
                    "seed \(seed), string \(n) \(s.debugDescription): bound \(MessageRecord.escapedBytesBound(s)), \(escaped)"
                )
                return
            }
            let alone = ServerEvent.message(m).json().utf8.count
            let inPage =
                ServerEvent.sync(SyncPage(messages: [m], cursors: [:], more: false)).json().utf8.count - emptyPage
            guard m.jsonBytesBound >= alone, m.jsonBytesBound >= inPage else {
                Issue.record(
                    "seed \(seed), message \(n): bound \(m.jsonBytesBound), alone \(alone), in a page \(inPage)")
                return
            }
        }
        let big = MessageRecord(
            chatId: Int64.max, seq: Int64.max, prev: Int64.max, messageId: String(repeating: "m", count: 40),
            ts: Int64.max, sender: String(repeating: "s", count: 64), text: String(repeating: "z", count: 100_000),
            clientId: String(repeating: "c", count: 128))
        let bytes = ServerEvent.message(big).json().utf8.count
        #expect(big.jsonBytesBound >= bytes && big.jsonBytesBound <= bytes + 256, "\(big.jsonBytesBound) for \(bytes)")
    }

    /// Every control character on its own, so none is left to chance.
    @Test func everyControlCharacterIsEscapedAsJSONEncoderDoes() {
        for b in UInt8(0)..<0x20 {
            let s = String(Unicode.Scalar(b))
            let e = ServerEvent.typing(chatId: 1, userId: "x\(s)y")
            #expect(e.json() == e.encodedByFoundation(), "byte \(b)")
        }
    }
}

/// The peer link's `send` frame and its ack `result` are written by `EventJSONWriter` and read
/// by `JSONDecoder`: every field must come back as it went in.
@Suite struct PeerSendTests {
    @Test(arguments: [7, 8, 0xBEEF] as [UInt64])
    func sendAndAckFramesRoundTrip(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for n in 0..<1_000 {
            func t() -> String { ServerEventJSONTests.text(&rng) }
            func i() -> Int64 { ServerEventJSONTests.int(&rng) }
            let id = UInt64.random(in: .min ... .max, using: &rng)
            let send = PeerSend(
                chatId: i(), send: .init(sender: t(), clientId: t(), text: t(), retry: Bool.random(using: &rng)))
            let parsed = PeerSend.parse(send.encoded(id: id))
            #expect(parsed?.0 == id && parsed?.1 == send, "seed \(seed), send \(n): \(send.encoded(id: id))")

            let ack = SendAck(
                chatId: i(), messageId: t(), seq: i(), ts: i(), clientId: t(), duplicate: Bool.random(using: &rng))
            let frame = PeerSend.result(id: id, .success(ack))
            guard let (rid, body) = PeerSend.parseResultFrame(frame) else {
                Issue.record("seed \(seed), ack \(n): not a result frame: \(frame)")
                return
            }
            #expect(rid == id)
            guard case .success(let back) = PeerSend.decodeResult(body), back == ack else {
                Issue.record("seed \(seed), ack \(n): \(frame) decoded as \(PeerSend.decodeResult(body))")
                return
            }
        }
    }

    @Test func anErrorResultCarriesItsCodeMessageAndRetryAfter() {
        let error = ChatError(.rateLimited, "slow \"down\"\n", retryAfterSeconds: 3)
        guard let (_, body) = PeerSend.parseResultFrame(PeerSend.result(id: 9, .failure(error))),
            case .failure(let back) = PeerSend.decodeResult(body)
        else {
            Issue.record("an error result did not decode as a failure")
            return
        }
        #expect(back.code == .rateLimited && back.message == error.message && back.retryAfterSeconds == 3)
    }
}
