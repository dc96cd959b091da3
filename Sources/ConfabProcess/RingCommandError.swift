/// A `confab ring …` failure: what happened and what to do about it, in one message.
package struct RingCommandError: Error, Hashable, Sendable, CustomStringConvertible {
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Wrapped: String {
            case noRing = "no ring"
            case alreadyRunning = "already running"
            case busy = "busy"
            case badNode = "bad node"
            case notRunning = "not running"
            case startFailed = "start failed"
            case timeout = "timeout"
            case noNodeAnswered = "no node answered"
            case io = "io"
        }
        fileprivate let wrapped: Wrapped

        /// The directory has no `ring.json`.
        package static let noRing = Code(wrapped: .noRing)
        /// `ring start` found live nodes of a ring in the directory.
        package static let alreadyRunning = Code(wrapped: .alreadyRunning)
        /// Another `confab ring` command holds the directory's lock.
        package static let busy = Code(wrapped: .busy)
        /// A node number outside 1...N, or a node already running (restart) / not running (kill).
        package static let badNode = Code(wrapped: .badNode)
        package static let notRunning = Code(wrapped: .notRunning)
        /// A node process could not be spawned or exited during startup.
        package static let startFailed = Code(wrapped: .startFailed)
        /// Nodes did not become normal (or exit) in time.
        package static let timeout = Code(wrapped: .timeout)
        /// `ring status`: nobody answered.
        package static let noNodeAnswered = Code(wrapped: .noNodeAnswered)
        /// Reading or writing the ring directory failed.
        package static let io = Code(wrapped: .io)

        package var description: String { wrapped.rawValue }
    }

    package var code: Code
    package var message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { message }
}
