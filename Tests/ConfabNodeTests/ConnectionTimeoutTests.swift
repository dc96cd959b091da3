import ConfabWire
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import ConfabTransport

/// A connection's request timeouts (`NodeConnectionHandler`), which share millisecond buckets and
/// one armed timer instead of a scheduled task per request.
@Suite struct ConnectionTimeoutTests {
    /// Requests of three timeouts, every other one answered: each unanswered one fails with
    /// `requestTimeout` once its timeout has passed (at most one bucket later) and not before; an
    /// answered one gets its answer and nothing else; a request written after an earlier
    /// deadline was armed, with a shorter timeout, still times out on time.
    @Test func unansweredRequestsTimeOutOnTimeAndAnsweredOnesNever() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(
            handler: NodeConnectionHandler(address: "127.0.0.1:1", maxFrameBytes: 1 << 20), loop: loop)
        let outcomes = Mutex<[Int: (String, Int64)]>([:])
        let start = loop.now
        let timeouts: [Int64] = [300, 100, 200, 50, 250, 150]  // ms, in writing order
        for (i, ms) in timeouts.enumerated() {
            let promise = loop.makePromise(of: WireMessage.self)
            promise.futureResult.whenComplete { result in
                let at = (loop.now.uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000
                let what: String
                switch result {
                case .success(.pong(let n)): what = "pong \(n)"
                case .success(let m): what = "unexpected \(m.type)"
                case .failure(let e as ConnectionError) where e.code == .requestTimeout: what = "timeout"
                case .failure(let e): what = "failure \(e)"
                }
                outcomes.withLock { $0[i] = (what, Int64(at)) }
            }
            channel.writeAndFlush(
                PendingRequest(message: .ping(nonce: UInt64(i)), promise: promise, timeout: .milliseconds(ms)),
                promise: nil)
        }
        loop.run()
        // Streams are given out from 2 in writing order; answer the even-numbered requests.
        for i in stride(from: 0, to: timeouts.count, by: 2) {
            try channel.writeInbound(
                InboundFrame.frame(WireMessage.pong(nonce: UInt64(i)).frame(streamID: UInt32(i + 2))))
        }
        for _ in 0..<400 { loop.advanceTime(by: .milliseconds(1)) }
        let o = outcomes.withLock { $0 }
        #expect(o.count == timeouts.count)
        for (i, ms) in timeouts.enumerated() {
            guard let (what, at) = o[i] else { continue }
            if i % 2 == 0 {
                #expect(what == "pong \(i)" && at == 0, "request \(i): \(what) at \(at) ms")
            } else {
                #expect(what == "timeout", "request \(i): \(what)")
                #expect(at >= ms && at <= ms + 1, "request \(i) with a \(ms) ms timeout timed out at \(at) ms")
            }
        }
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
