/// Why a node could not start or stopped: bad configuration, a port in use, an unusable data
/// directory. Request-level failures travel as `WireError` instead.
public struct NodeError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Wrapped: String {
            case invalidConfiguration = "invalid configuration"
            case bindFailed = "cannot listen"
            case dataDirectory = "data directory"
            case notRunning = "not running"
        }
        fileprivate let wrapped: Wrapped

        /// A config file line or flag is wrong (the message names it).
        public static let invalidConfiguration = Code(wrapped: .invalidConfiguration)
        /// The listen address could not be bound (in use, not local, no permission).
        public static let bindFailed = Code(wrapped: .bindFailed)
        /// The data directory cannot be created, locked or read.
        public static let dataDirectory = Code(wrapped: .dataDirectory)
        /// The node stopped (or failed) before it was listening.
        public static let notRunning = Code(wrapped: .notRunning)

        public var description: String { wrapped.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
