import ConfabEngine
import Foundation
import Logging
import Testing

@testable import ConfabChat

/// Forwarded requests that the peer never answers fail with `storage_unavailable` once their
/// timeout passes — from one reaper task per link, not a sleeping task per request.
@Suite struct PeerLinkTimeoutTests {
    /// Three requests to a peer that is never connected: each fails with the timeout's error, no
    /// earlier than its timeout, and the link holds no request afterwards.
    @Test func unansweredRequestsFailAfterTheirTimeout() async throws {
        let link = PeerLink.unconnected(maxFrames: 16)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: (Int, Duration, String).self) { group in
            for (i, ms) in [120, 40, 80].enumerated() {
                group.addTask {
                    do {
                        _ = try await link.request(timeout: .milliseconds(ms)) { "request \(i) id \($0)" }
                        return (ms, ContinuousClock.now - start, "answered")
                    } catch let e as ChatError {
                        return (ms, ContinuousClock.now - start, "\(e.code): \(e.message)")
                    }
                }
            }
            for try await (ms, elapsed, outcome) in group {
                #expect(outcome.hasPrefix("storage_unavailable: chat server p did not answer in time"), "\(outcome)")
                #expect(elapsed >= .milliseconds(ms), "a \(ms) ms request failed after \(elapsed)")
            }
        }
        #expect(link.queue.count == 3)
        #expect(link.waitingRequests == 0)
    }
}
