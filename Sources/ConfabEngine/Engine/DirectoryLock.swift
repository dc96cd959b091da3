#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An exclusive flock on `<dir>/LOCK`, so two processes never open the same data directory.
/// The kernel drops it when the process dies, so a SIGKILLed node does not leave it stale.
final class DirectoryLock: @unchecked Sendable {
    private var fd: Int32

    init(directory: String) throws {
        let path = joinPath(directory, "LOCK")
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PosixFileSystem.error("open lock file", path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            close(fd)
            fd = -1
            if e == EWOULDBLOCK {
                throw StorageError(
                    .io, "the data directory is already open in another process (or engine); stop it first", path: path,
                    errno: e)
            }
            throw PosixFileSystem.error("lock", path, e)
        }
    }

    func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
