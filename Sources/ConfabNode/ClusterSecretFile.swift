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

    /// Creates `path` with a new secret unless it exists; returns true if it created it.
    ///
    /// Why this dance: the file is born 0600 (O_CREAT|O_EXCL with mode 0600 on a temporary name,
    /// umask can only narrow it), so there is no moment when another user could read it, as
    /// there would be between a create and a chmod; the rename publishes it whole, and the fsyncs
    /// make a crash leave either no file or the complete one.
    @discardableResult
    public static func createIfMissing(at path: String) throws(ClusterSecretFileError) -> Bool {
        if FileManager.default.fileExists(atPath: path) { return false }
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ClusterSecretFileError(.io, "cannot create \(temporary)", cause: errnoText()) }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        let bytes = ClusterSecret.generate()
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            let reason = errnoText()
            close(fd)
            throw ClusterSecretFileError(.io, "cannot write \(temporary)", cause: reason)
        }
        guard fsync(fd) == 0 else {
            let reason = errnoText()
            close(fd)
            throw ClusterSecretFileError(.io, "cannot fsync \(temporary)", cause: reason)
        }
        close(fd)
        // link(2) fails if another `ring start` won the race, unlike rename, which would replace
        // the secret nodes may already have read.
        guard link(temporary, path) == 0 else {
            if errno == EEXIST { return false }
            throw ClusterSecretFileError(.io, "cannot create \(path)", cause: errnoText())
        }
        unlink(temporary)
        ok = true
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            let synced = fsync(dfd)
            close(dfd)
            guard synced == 0 else {
                throw ClusterSecretFileError(.io, "cannot fsync \(directory)", cause: errnoText())
            }
        }
        return true
    }

    /// Reads the secret, refusing a file that group or others may read or write.
    public static func load(_ path: String) throws(ClusterSecretFileError) -> ClusterSecret {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT {
                throw ClusterSecretFileError(
                    .missing, "no cluster secret at \(path) (`confab ring start` creates one in the ring directory)")
            }
            throw ClusterSecretFileError(.unreadable, "cannot open \(path)", cause: errnoText())
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw ClusterSecretFileError(.unreadable, "cannot stat \(path)", cause: errnoText())
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw ClusterSecretFileError(
                .tooOpen,
                """
                \(path) has mode \(String(mode, radix: 8)): group or others may read it; the cluster secret lets \
                anyone who has it act as a node or an operator. Run `chmod 600 \(path)` (and check who has read it)
                """)
        }
        var bytes = [UInt8](repeating: 0, count: ClusterSecret.size + 1)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw ClusterSecretFileError(.unreadable, "cannot read \(path)", cause: errnoText()) }
        do {
            return try ClusterSecret(bytes: Array(bytes.prefix(count)))
        } catch {
            throw ClusterSecretFileError(
                .malformed,
                "\(path) holds \(count == bytes.count ? "more than \(ClusterSecret.size)" : "\(count)") bytes; a cluster secret is \(ClusterSecret.size) random bytes"
            )
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
