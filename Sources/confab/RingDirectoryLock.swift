import ConfabProcess
import Foundation

/// An exclusive `flock` on `D/ring.lock`, held while a ring command changes the ring (start, stop,
/// kill, restart), so two of them never race on the same directory. Released when dropped. The
/// descriptor is close-on-exec: nodes spawned meanwhile do not inherit (and keep) the lock.
struct RingDirectoryLock: ~Copyable {
    private let fd: Int32

    /// Takes the lock; `create` makes the directory first (for `ring start`).
    init(directory: String, create: Bool = false) throws(RingCommandError) {
        if create {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw RingCommandError(.io, "cannot create \(directory): \(error)")
            }
        }
        let path = "\(directory)/ring.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RingCommandError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw RingCommandError(
                .busy, "another `confab ring` command is working on \(directory); wait for it to finish")
        }
        self.fd = fd
    }

    deinit { close(fd) }
}
