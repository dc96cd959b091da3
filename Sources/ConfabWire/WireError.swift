/// An error of the Confab wire protocol: what a decoder throws for malformed bytes, and what a node
/// sends back in an `Error` frame (the same code and message travel on the wire, see
/// docs/node_protocol.md § Error codes).
///
/// The code wraps a private enum behind static members (as swift-nio's `FileSystemError` does), so
/// new codes can be added without breaking callers; an unknown code received from a newer peer is
/// kept as its raw number.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Known: UInt16 {
            case server = 0x0001
            case protocolError = 0x0002
            case corrupt = 0x0003
            case tooLarge = 0x0004
            case invalid = 0x0010
            case notFound = 0x0011
            case unauthorized = 0x0020
            case forbidden = 0x0021
            case unavailable = 0x1000
            case overloaded = 0x1001
            case timeout = 0x1100
        }

        /// The number carried in an Error frame.
        public let rawValue: UInt16

        public init(rawValue: UInt16) { self.rawValue = rawValue }
        fileprivate init(_ known: Known) { self.rawValue = known.rawValue }

        /// The node failed for a reason of its own (an I/O error, a bug); the request may be retried.
        public static let server = Code(.server)
        /// The bytes do not follow the protocol: bad magic, unknown version or message type,
        /// truncated or malformed body. Framing may be lost; the sender closes the connection when it is.
        public static let protocolError = Code(.protocolError)
        /// A frame's checksum does not match its bytes.
        public static let corrupt = Code(.corrupt)
        /// A frame or value exceeds its size limit.
        public static let tooLarge = Code(.tooLarge)
        /// A well-formed request the node will not run: bad consistency level, empty partition key …
        public static let invalid = Code(.invalid)
        /// The keyspace or table does not exist.
        public static let notFound = Code(.notFound)
        /// The connection has not authenticated for this message (or its authentication failed):
        /// operator and internode messages need the cluster secret (docs/security.md).
        public static let unauthorized = Code(.unauthorized)
        /// The connection authenticated, but its role may not send this message (an operator
        /// sending an internode message).
        public static let forbidden = Code(.forbidden)
        /// Too few replicas are alive to try the request at its consistency level (nothing was written).
        public static let unavailable = Code(.unavailable)
        /// The node is shedding load; retry elsewhere or later.
        public static let overloaded = Code(.overloaded)
        /// Replicas did not answer in time; a write may or may not have been applied.
        public static let timeout = Code(.timeout)

        public var description: String {
            switch Known(rawValue: rawValue) {
            case .server: return "server error"
            case .protocolError: return "protocol error"
            case .corrupt: return "corrupt"
            case .tooLarge: return "too large"
            case .invalid: return "invalid request"
            case .notFound: return "not found"
            case .unauthorized: return "unauthorized"
            case .forbidden: return "forbidden"
            case .unavailable: return "unavailable"
            case .overloaded: return "overloaded"
            case .timeout: return "timeout"
            case nil: return "error 0x" + String(rawValue, radix: 16)
            }
        }

        /// True for failures where sending the same request to another node may succeed.
        public var isRetryableElsewhere: Bool {
            self == .server || self == .overloaded || self == .unavailable || self == .timeout
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
