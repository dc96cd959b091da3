import Foundation
import Testing

@testable import ConfabChat

/// The pure parts of cross-server delivery: the `/internal/ws` frame, its authentication and the
/// bounded per-peer queue.
struct PeerForwardingTests {
    @Test func aDeliverFrameRoundTripsAndKeepsTheEventJSONByteForByte() {
        let json = #"{"message":{"text":"line one\nline two, with spaces"},"type":"message"}"#
        let frame = PeerFrame(type: "message", users: ["alice", "bob_2"], json: json)
        #expect(frame.encoded().hasPrefix("deliver message alice,bob_2\n"))
        #expect(PeerFrame.parse(frame.encoded()) == frame)
        #expect(PeerFrame.parse("hello there") == nil)
        #expect(PeerFrame.parse("subscribe x a\n{}") == nil)
    }

    /// Each proof is bound to the other side's nonce for this connection: a hello recorded on
    /// one connection is refused on the next (issue 12: the old HMAC over (sender, time) could be
    /// replayed for five minutes), and neither side accepts a proof made with another secret.
    @Test func theHandshakeProvesTheSecretAndIsBoundToThisConnection() {
        let mine = PeerHandshake(secret: Array("deployment-secret-0123".utf8))
        let other = PeerHandshake(secret: Array("another-secret-000000".utf8))
        let receiverNonce = PeerHandshake.nonce()
        let senderNonce = PeerHandshake.nonce()
        #expect(receiverNonce != senderNonce && receiverNonce.utf8.count == 64)
        #expect(PeerHandshake.parseChallenge(PeerHandshake.challenge(nonce: receiverNonce)) == receiverNonce)
        #expect(PeerHandshake.parseChallenge("challenge xyz") == nil)

        let hello = mine.hello(from: "chat1", receiverNonce: receiverNonce, senderNonce: senderNonce)
        let verified = mine.verifyHello(hello, receiverNonce: receiverNonce)
        #expect(verified?.senderId == "chat1" && verified?.senderNonce == senderNonce)
        #expect(mine.verifyHello(hello, receiverNonce: PeerHandshake.nonce()) == nil, "a replayed hello was accepted")
        #expect(other.verifyHello(hello, receiverNonce: receiverNonce) == nil)
        #expect(
            mine.verifyHello(hello.replacingOccurrences(of: "chat1", with: "chat2"), receiverNonce: receiverNonce)
                == nil)
        #expect(mine.verifyHello("hello chat1", receiverNonce: receiverNonce) == nil)

        let welcome = mine.welcome(receiverId: "chat2", receiverNonce: receiverNonce, senderNonce: senderNonce)
        #expect(mine.verifyWelcome(welcome, receiverNonce: receiverNonce, senderNonce: senderNonce) == "chat2")
        #expect(mine.verifyWelcome(welcome, receiverNonce: receiverNonce, senderNonce: PeerHandshake.nonce()) == nil)
        #expect(
            other.verifyWelcome(
                other.welcome(receiverId: "chat2", receiverNonce: receiverNonce, senderNonce: senderNonce),
                receiverNonce: receiverNonce, senderNonce: senderNonce) == "chat2")
        #expect(
            mine.verifyWelcome(
                other.welcome(receiverId: "chat2", receiverNonce: receiverNonce, senderNonce: senderNonce),
                receiverNonce: receiverNonce, senderNonce: senderNonce) == nil)
    }

    @Test func aPeerQueueDropsWhenFullKeepsOrderAndRequeuesFirst() async {
        let queue = PeerQueue(maxFrames: 3)
        #expect(queue.push("a") && queue.push("b") && queue.push("c"))
        #expect(!queue.push("d"))
        #expect(await queue.next() == "a")
        queue.requeue("a")
        #expect(await queue.next() == "a")
        #expect(await queue.next() == "b")
        #expect(await queue.next() == "c")
        queue.finish()
        #expect(await queue.next() == nil)
        #expect(!queue.push("e"))
    }

    /// Issue 12: the queue is bounded by bytes as well as frames (frames may carry 100,000-
    /// character messages); an empty queue still takes one frame of any size, so a large message
    /// is never undeliverable.
    @Test func aPeerQueueIsBoundedByBytesToo() async {
        let queue = PeerQueue(maxFrames: 1000, maxBytes: 100)
        let forty = String(repeating: "x", count: 40)
        #expect(queue.push(forty) && queue.push(forty))
        #expect(!queue.push(forty), "a third 40-byte frame exceeds 100 bytes")
        #expect(queue.push("tiny"))
        #expect(queue.byteCount == 84)
        #expect(await queue.next() == forty)
        #expect(queue.byteCount == 44)
        #expect(queue.push(forty))
        _ = await queue.next()
        _ = await queue.next()
        _ = await queue.next()
        #expect(queue.count == 0 && queue.byteCount == 0)
        #expect(queue.push(String(repeating: "y", count: 500)), "an empty queue refused one large frame")
        #expect(!queue.push("z"))
    }

    @Test func aWriterWaitingOnAnEmptyPeerQueueLetsGoWhenCancelled() async {
        let queue = PeerQueue(maxFrames: 3)
        let waiting = Task { await queue.next() }
        // Cancel it parked (cancelled before it parks, it returns nil by another path).
        let deadline = ContinuousClock.now + .seconds(10)
        while !queue.hasWaiter, ContinuousClock.now < deadline { await Task.yield() }
        #expect(queue.hasWaiter, "the writer never parked")
        waiting.cancel()
        #expect(await waiting.value == nil)
        // A frame pushed meanwhile was not taken by the cancelled writer.
        #expect(queue.push("x"))
        #expect(await queue.next() == "x")
    }
}
