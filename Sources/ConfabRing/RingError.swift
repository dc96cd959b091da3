/// An error from the ring: why a request could not be served at its consistency level.
///
/// The code is a private enum exposed through static members (the shape of `StorageError` and
/// swift-nio's `FileSystemError`), so codes can be added without breaking callers. `unavailable`
/// is decided before anything is sent (nothing was written); `writeTimeout` means the write may or
/// may not have been applied on some replicas (the client may retry: writes are idempotent because
/// they carry their timestamp).
package struct RingError: Error, Hashable, Sendable, CustomStringConvertible {
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Wrapped: String, Hashable, Sendable {
            case unavailable, writeTimeout, readTimeout, writeFailure, readFailure, invalidArgument
        }
        fileprivate var wrapped: Wrapped
        /// Fewer replicas are alive than the consistency level needs; nothing was sent.
        package static let unavailable = Code(wrapped: .unavailable)
        /// Too few replicas acknowledged a write before the timeout; it may be partly applied.
        package static let writeTimeout = Code(wrapped: .writeTimeout)
        /// Too few replicas answered a read (or acknowledged its read repair) before the timeout.
        package static let readTimeout = Code(wrapped: .readTimeout)
        /// Replicas reported errors, so the level can no longer be met.
        package static let writeFailure = Code(wrapped: .writeFailure)
        package static let readFailure = Code(wrapped: .readFailure)
        /// The caller passed something the ring cannot use (a token conflict, RF < 1).
        package static let invalidArgument = Code(wrapped: .invalidArgument)
        package var description: String { wrapped.rawValue }
    }

    package var code: Code
    package var message: String
    /// The level of the request, when the error is about one.
    package var consistency: ConsistencyLevel?
    /// Replicas the level required.
    package var required: Int?
    /// Replicas alive (`unavailable`) or that answered (timeouts and failures).
    package var received: Int?

    package init(
        _ code: Code, _ message: String, consistency: ConsistencyLevel? = nil,
        required: Int? = nil, received: Int? = nil
    ) {
        self.code = code
        self.message = message
        self.consistency = consistency
        self.required = required
        self.received = received
    }

    package var description: String { "\(code): \(message)" }

    static func unavailable(_ cl: ConsistencyLevel, required: Int, alive: Int) -> RingError {
        RingError(
            .unavailable,
            "cannot achieve consistency \(cl.rawValue): \(required) replica(s) required but only \(alive) alive; nothing was sent",
            consistency: cl, required: required, received: alive)
    }

    static func timeout(
        write: Bool, _ cl: ConsistencyLevel, required: Int, received: Int, after: Duration,
        phase: String? = nil
    ) -> RingError {
        let what = write ? "write" : "read"
        var msg =
            "\(cl.rawValue) \(what) timed out after \(after.seconds)s: \(received) of \(required) required replica(s) answered"
        if let phase { msg += " (\(phase))" }
        if write { msg += "; the write may have been applied on some replicas" }
        return RingError(
            write ? .writeTimeout : .readTimeout, msg, consistency: cl, required: required, received: received)
    }
}
