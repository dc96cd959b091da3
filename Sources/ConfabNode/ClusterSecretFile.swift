import ConfabWire
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a cluster-secret file could not be created or used.
public struct ClusterSecretFileError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Wrapped: String {
            case missing = "no cluster secret"
            case unreadable = "cluster secret unreadable"
            case tooOpen = "cluster secret readable by others"
            case malformed = "cluster secret malformed"
            case io = "cluster secret i/o"
        }
        fileprivate let wrapped: Wrapped

        /// The file does not exist.
        public static let missing = Code(wrapped: .missing)
        /// It exists but cannot be opened or read.
        public static let unreadable = Code(wrapped: .unreadable)
        /// Its mode lets group or others read or write it.
        public static let tooOpen = Code(wrapped: .tooOpen)
        /// It does not hold exactly `ClusterSecret.size` bytes.
        public static let malformed = Code(wrapped: .malformed)
        /// Creating it failed.
        public static let io = Code(wrapped: .io)

        public var description: String { wrapped.rawValue }
    }

    public var code: Code
    public var message: String
    /// The system's reason (strerror), when there is one.
    public var cause: String?

    public init(_ code: Code, _ message: String, cause: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}

/// The ring's `cluster-secret` file: 32 random bytes, mode 0600, created by `confab ring start`
/// and read by every command that authenticates (docs/security.md § Where the secret lives).
public enum ClusterSecretFile {
    /// Its name in a ring directory.
    public static let fileName = "cluster-secret"
    /// The environment variable naming a secret file, for `confab node` and the admin commands.
    public static let environmentVariable = "CONFAB_CLUSTER_SECRET_FILE"

    public static func path(inRingDirectory directory: String) -> String {
        (directory as NSString).appendingPathComponent(fileName)
    }

    /// Creates `path` with a new secret unless it exists; returns true if it created it. Born
    /// 0600 and whole (`PrivateFile`).
    @discardableResult
    public static func createIfMissing(at path: String) throws(ClusterSecretFileError) -> Bool {
        do {
            return try PrivateFile.createIfMissing(at: path, contents: ClusterSecret.generate())
        } catch {
            throw ClusterSecretFileError(.io, error.message, cause: error.cause)
        }
    }

    /// Reads the secret, refusing a file that group or others may read or write.
    public static func load(_ path: String) throws(ClusterSecretFileError) -> ClusterSecret {
        let bytes: [UInt8]
        do {
            bytes = try PrivateFile.contents(
                of: path, maxBytes: ClusterSecret.size + 1,
                what: "the cluster secret lets anyone who has it act as a node or an operator")
        } catch {
            switch error.code {
            case .missing:
                throw ClusterSecretFileError(
                    .missing, "no cluster secret at \(path) (`confab ring start` creates one in the ring directory)")
            case .tooOpen: throw ClusterSecretFileError(.tooOpen, error.message)
            default: throw ClusterSecretFileError(.unreadable, error.message, cause: error.cause)
            }
        }
        do {
            return try ClusterSecret(bytes: bytes)
        } catch {
            throw ClusterSecretFileError(
                .malformed,
                "\(path) holds \(bytes.count > ClusterSecret.size ? "more than \(ClusterSecret.size)" : "\(bytes.count)") bytes; a cluster secret is \(ClusterSecret.size) random bytes"
            )
        }
    }

}
