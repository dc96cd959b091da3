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
    /// A batch carries its frames byte for byte, whatever they hold: newlines (every `deliver`
    /// frame has one), digits where a length could be misread, multi-byte characters, nothing.
    @Test(arguments: [1, 2, 3])
    func aBatchRoundTripsItsFramesByteForByte(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let pieces = ["\n", "12\n", "é", "🙂", "batch\n", " ", "deliver message a,b\n{}", "0", ""]
        for _ in 0..<500 {
            let frames = (0..<Int.random(in: 1...12, using: &rng)).map { _ in
                (0..<Int.random(in: 0...6, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            }
            #expect(PeerBatch.parse(PeerBatch.encode(frames)) == frames)
        }
        #expect(PeerBatch.parse(PeerBatch.encode([])) == [])
    }

    /// What is not a well-formed batch is not read as one: a frame of another kind, a length that
    /// is not a decimal, runs past the end or splits a character.
    @Test func aMalformedBatchIsRefused() {
        #expect(PeerBatch.parse("deliver message a\n{}") == nil)
        #expect(PeerBatch.parse(PeerBatch.features) == nil)
        #expect(PeerBatch.parse("batch\nx\nabc") == nil)
        #expect(PeerBatch.parse("batch\n5\nabc") == nil)
        #expect(PeerBatch.parse("batch\n3") == nil)
        #expect(PeerBatch.parse("batch\n\nabc") == nil)
        #expect(PeerBatch.parse("batch\n1\né") == nil, "a length that splits a UTF-8 character")
        #expect(PeerBatch.parse("batch\n99999999999\nabc") == nil)
        #expect(PeerBatch.parse("batch\n3\nabc") == ["abc"])
    }

    /// The writer takes what waits, within a byte limit and in order; a bulk push hands its first
    /// frame to a parked writer and queues the rest, so the writer finds them waiting.
    @Test func aPeerQueueDrainsWhatWaitsAndTakesABurstUnderOneLock() async {
        let queue = PeerQueue(maxFrames: 100)
        #expect(queue.push("aaaa") && queue.push("bbbb") && queue.push("cc"))
        #expect(queue.drain(maxBytes: 9) == ["aaaa", "bbbb"])
        #expect(queue.drain(maxBytes: 1) == [])
        #expect(queue.drain(maxBytes: 100) == ["cc"])
        #expect(queue.count == 0 && queue.byteCount == 0)

        let waiting = Task { await queue.next() }
        let deadline = ContinuousClock.now + .seconds(10)
        while !queue.hasWaiter, ContinuousClock.now < deadline { await Task.yield() }
        #expect(queue.hasWaiter, "the writer never parked")
        #expect(queue.push(contentsOf: ["1", "2", "3"]) == 3)
        #expect(await waiting.value == "1")
        #expect(queue.drain(maxBytes: 100) == ["2", "3"])

        let small = PeerQueue(maxFrames: 2)
        #expect(small.push(contentsOf: ["x", "y", "z"]) == 2, "the third does not fit")
        #expect(small.drain(maxBytes: 100) == ["x", "y"])
    }
}
