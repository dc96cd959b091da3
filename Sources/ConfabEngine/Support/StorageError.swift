/// An error from the storage engine: what happened, where, and what to do.
///
/// The code is a private enum exposed through static members (the shape of swift-nio's
/// `FileSystemError`), so new codes can be added without breaking callers that switch on it.
public struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Wrapped: String, Hashable, Sendable {
            case io, corruption, invalidArgument, notFound, closed, diskFull, tooLarge, unsupportedVersion
        }
        fileprivate var wrapped: Wrapped
        /// An operating-system call failed.
        public static let io = Code(wrapped: .io)
        /// Bytes on disk fail a checksum or do not parse; the data is never served.
        public static let corruption = Code(wrapped: .corruption)
        /// The caller passed something the engine cannot store or answer.
        public static let invalidArgument = Code(wrapped: .invalidArgument)
        /// A file or object the caller named does not exist.
        public static let notFound = Code(wrapped: .notFound)
        /// The engine was closed.
        public static let closed = Code(wrapped: .closed)
        /// The disk is full (ENOSPC); nothing partial was acknowledged.
        public static let diskFull = Code(wrapped: .diskFull)
        /// A value exceeds a size limit.
        public static let tooLarge = Code(wrapped: .tooLarge)
        /// A file was written by a newer, unknown format version.
        public static let unsupportedVersion = Code(wrapped: .unsupportedVersion)
        public var description: String { wrapped.rawValue }
    }

    public var code: Code
    public var message: String
    /// The file the error is about, when there is one.
    public var path: String?
    /// The byte offset inside `path`, when known (corruption reports always carry one).
    public var offset: Int?
    /// The errno of a failed system call.
    public var errno: Int32?

    public init(_ code: Code, _ message: String, path: String? = nil, offset: Int? = nil, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.offset = offset
        self.errno = errno
    }

    public var description: String {
        var s = "\(code): \(message)"
        if let path {
            s += " [file \(path)" + (offset.map { " at offset \($0)" } ?? "") + "]"
        } else if let offset {
            s += " [offset \(offset)]"
        }
        if let errno { s += " (errno \(errno))" }
        return s
    }

    static func corruption(_ message: String, path: String?, offset: Int?) -> StorageError {
        StorageError(.corruption, message, path: path, offset: offset)
    }
}
