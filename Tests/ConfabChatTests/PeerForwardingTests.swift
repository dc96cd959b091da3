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

    @Test func internalAuthAcceptsOnlyThisSecretWithinTheWindow() {
        let auth = InternalAuth(secret: Array("deployment-secret-0123".utf8), window: 300)
        let other = InternalAuth(secret: Array("another-secret-000000".utf8), window: 300)
        let sig = auth.signature(serverId: "chat1", unixSeconds: 1_000_000)
        #expect(auth.verify(from: "chat1", ts: "1000000", sig: sig, nowSeconds: 1_000_100))
        #expect(!auth.verify(from: "chat2", ts: "1000000", sig: sig, nowSeconds: 1_000_100))
        #expect(!auth.verify(from: "chat1", ts: "1000001", sig: sig, nowSeconds: 1_000_100))
        #expect(!auth.verify(from: "chat1", ts: "1000000", sig: sig, nowSeconds: 1_000_301))
        #expect(
            !auth.verify(
                from: "chat1", ts: "1000000", sig: other.signature(serverId: "chat1", unixSeconds: 1_000_000),
                nowSeconds: 1_000_000))
        #expect(!auth.verify(from: "chat1", ts: "1000000", sig: nil, nowSeconds: 1_000_000))
        #expect(
            auth.query(serverId: "chat1", unixSeconds: 5).hasSuffix(
                "&sig=" + auth.signature(serverId: "chat1", unixSeconds: 5)))
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

    @Test func aWriterWaitingOnAnEmptyPeerQueueLetsGoWhenCancelled() async {
        let queue = PeerQueue(maxFrames: 3)
        let waiting = Task { await queue.next() }
        try? await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(await waiting.value == nil)
        // A frame pushed meanwhile was not taken by the cancelled writer.
        #expect(queue.push("x"))
        #expect(await queue.next() == "x")
    }
}
