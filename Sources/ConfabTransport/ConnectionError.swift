/// A failure on this side of a request to a node (a client's or a node's): no node reachable, a connection lost, no answer in
/// time. Errors a node reports come as `WireError` (code and message from the node).
public struct ConnectionError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Wrapped: String {
            case noNodeReachable = "no node reachable"
            case connectionClosed = "connection closed"
            case requestTimeout = "request timeout"
            case unexpectedResponse = "unexpected response"
            case invalidArgument = "invalid argument"
            case shutDown = "client shut down"
        }
        fileprivate let wrapped: Wrapped

        /// Every node tried refused the connection or could not be reached.
        public static let noNodeReachable = Code(wrapped: .noNodeReachable)
        /// The connection closed before the answer arrived: the request may or may not have run.
        public static let connectionClosed = Code(wrapped: .connectionClosed)
        /// No answer within the request timeout: the request may or may not have run.
        public static let requestTimeout = Code(wrapped: .requestTimeout)
        /// The node answered with a message that does not answer the request.
        public static let unexpectedResponse = Code(wrapped: .unexpectedResponse)
        /// The request cannot be sent as given (e.g. larger than a frame).
        public static let invalidArgument = Code(wrapped: .invalidArgument)
        /// `shutdown()` was called.
        public static let shutDown = Code(wrapped: .shutDown)

        public var description: String { wrapped.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// True when the same request may succeed on another node (the connection, not the request,
    /// failed).
    package var isRetryableElsewhere: Bool {
        code == .noNodeReachable || code == .connectionClosed || code == .requestTimeout
    }
}
