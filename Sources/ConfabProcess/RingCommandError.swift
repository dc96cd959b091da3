/// A failure of the process layer (`confab ring …`, `confab up`, a server that would not start):
/// what happened and what to do about it, in one message.
public struct RingCommandError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
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
        public static let noRing = Code(wrapped: .noRing)
        /// `ring start` found live nodes of a ring in the directory.
        public static let alreadyRunning = Code(wrapped: .alreadyRunning)
        /// Another `confab ring` command holds the directory's lock.
        public static let busy = Code(wrapped: .busy)
        /// A node number outside 1...N, or a node already running (restart) / not running (kill).
        public static let badNode = Code(wrapped: .badNode)
        public static let notRunning = Code(wrapped: .notRunning)
        /// A node process could not be spawned or exited during startup.
        public static let startFailed = Code(wrapped: .startFailed)
        /// Nodes did not become normal (or exit) in time.
        public static let timeout = Code(wrapped: .timeout)
        /// `ring status`: nobody answered.
        public static let noNodeAnswered = Code(wrapped: .noNodeAnswered)
        /// Reading or writing the ring directory failed.
        public static let io = Code(wrapped: .io)

        public var description: String { wrapped.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
