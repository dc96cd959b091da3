import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a private file could not be created or read.
package struct PrivateFileError: Error, Hashable, Sendable, CustomStringConvertible {
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Wrapped: String {
            case missing = "missing"
            case unreadable = "unreadable"
            case tooOpen = "readable by others"
            case io = "i/o"
        }
        fileprivate let wrapped: Wrapped

        /// The file does not exist.
        package static let missing = Code(wrapped: .missing)
        /// It exists but cannot be opened or read.
        package static let unreadable = Code(wrapped: .unreadable)
        /// Its mode lets group or others read or write it.
        package static let tooOpen = Code(wrapped: .tooOpen)
        /// Creating it failed.
        package static let io = Code(wrapped: .io)

        package var description: String { wrapped.rawValue }
    }

    package var code: Code
    package var message: String
    /// The system's reason (strerror), when there is one.
    package var cause: String?

    package init(_ code: Code, _ message: String, cause: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    package var description: String { cause.map { "\(message): \($0)" } ?? message }
}

/// A small file only its owner may read: the ring's cluster secret, the chat servers' token
/// secret (docs/security.md).
///
/// Why this dance: the file is born 0600 (O_CREAT|O_EXCL with mode 0600 on a temporary name; umask
/// can only narrow it), so there is no moment when another user could read it, as there would be
/// between a create and a chmod; `link(2)` publishes it whole and fails if someone else created
/// it first (a rename would replace a secret others may already have read); the fsyncs make a
/// crash leave either no file or the complete one.
package enum PrivateFile {
    /// Creates `path` holding `contents` unless it exists; returns true if it created it.
    @discardableResult
    package static func createIfMissing(at path: String, contents: [UInt8]) throws(PrivateFileError) -> Bool {
        if FileManager.default.fileExists(atPath: path) { return false }
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PrivateFileError(.io, "cannot create \(temporary)", cause: errnoText()) }
        var ok = false
        defer { if !ok { unlink(temporary) } }
        let written = contents.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == contents.count else {
            let reason = errnoText()
            close(fd)
            throw PrivateFileError(.io, "cannot write \(temporary)", cause: reason)
        }
        guard fsync(fd) == 0 else {
            let reason = errnoText()
            close(fd)
            throw PrivateFileError(.io, "cannot fsync \(temporary)", cause: reason)
        }
        close(fd)
        guard link(temporary, path) == 0 else {
            if errno == EEXIST { return false }
            throw PrivateFileError(.io, "cannot create \(path)", cause: errnoText())
        }
        unlink(temporary)
        ok = true
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            let synced = fsync(dfd)
            close(dfd)
            guard synced == 0 else { throw PrivateFileError(.io, "cannot fsync \(directory)", cause: errnoText()) }
        }
        return true
    }

    /// Reads up to `maxBytes` of it, refusing a file that group or others may read or write.
    /// `what` names the secret in the errors ("the cluster secret lets anyone who has it act as a
    /// node or an operator").
    package static func contents(of path: String, maxBytes: Int, what: String) throws(PrivateFileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw PrivateFileError(.missing, "no file at \(path)") }
            throw PrivateFileError(.unreadable, "cannot open \(path)", cause: errnoText())
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw PrivateFileError(.unreadable, "cannot stat \(path)", cause: errnoText())
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw PrivateFileError(
                .tooOpen,
                """
                \(path) has mode \(String(mode, radix: 8)): group or others may read it; \(what). \
                Run `chmod 600 \(path)` (and check who has read it)
                """)
        }
        var bytes = [UInt8](repeating: 0, count: maxBytes)
        var count = 0
        while count < maxBytes {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, maxBytes - count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw PrivateFileError(.unreadable, "cannot read \(path)", cause: errnoText()) }
            if n == 0 { break }
            count += n
        }
        return Array(bytes.prefix(count))
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
