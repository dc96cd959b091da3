import CProcessWatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Pidfds of some processes, to wait in `poll(2)` until one exits (Linux ≥ 5.3; a pidfd works
/// for any process, not only our children). Where a pidfd cannot be had (an older kernel, no
/// descriptors left), the wait looks at the process every 50 ms instead.
final class ExitWatch {
    private let processes: [ServerProcess]
    private var descriptors: [Int32]
    /// Whether that fallback look may reap an exited child (false when the caller wants its status).
    private let reaping: Bool

    init(_ processes: [ServerProcess], reaping: Bool = true) {
        self.processes = processes
        self.reaping = reaping
        descriptors = processes.map { confab_pidfd_open($0.pid) }
    }

    /// The fallback look: whether the process has exited.
    private func hasExited(_ process: ServerProcess) -> Bool {
        if reaping { return !process.isRunning }  // not isAlive: a child may not have exec'd yet
        // Without reaping: gone, or a zombie waiting for the caller's waitpid.
        return kill(process.pid, 0) != 0 || ServerProcess.hasExited(process.pid)
    }

    deinit { for fd in descriptors where fd >= 0 { close(fd) } }

    /// Blocks until a watched process exits, `wake` is readable or `deadline` passes (nil: no
    /// deadline). Returns the processes whose exit woke it (possibly empty).
    func wait(until deadline: ContinuousClock.Instant?, wake: Int32? = nil) -> [ServerProcess] {
        var fds = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        if let wake { fds.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0)) }
        let fallback = descriptors.contains { $0 < 0 }
        while true {
            var timeout: Int32 = -1
            if let deadline {
                let left = ContinuousClock.now.duration(to: deadline)
                if left <= .zero { return [] }
                let (seconds, attoseconds) = left.components
                timeout = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            }
            if fallback { timeout = timeout < 0 ? 50 : min(timeout, 50) }
            // A pidfd of -1 is skipped by poll(2).
            let rc = poll(&fds, nfds_t(fds.count), timeout)
            if rc < 0, errno == EINTR { continue }
            var exited: [ServerProcess] = []
            for (i, process) in processes.enumerated() {
                if descriptors[i] >= 0 ? fds[i].revents != 0 : hasExited(process) { exited.append(process) }
            }
            if !exited.isEmpty || rc != 0 { return exited }
            if fallback, deadline == nil || ContinuousClock.now < deadline! { continue }
            return []
        }
    }
}

/// A log file read as it grows: the complete lines written since the last read, and an inotify
/// descriptor that becomes readable when it is written to (nil when inotify is unavailable).
final class LogWatch {
    private let path: String
    private var offset: Int
    private var partial: [UInt8] = []
    let descriptor: Int32?

    init(path: String, from offset: Int) {
        self.path = path
        self.offset = offset
        #if os(Linux)
            let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
            if fd >= 0, inotify_add_watch(fd, path, UInt32(IN_MODIFY)) >= 0 {
                descriptor = fd
            } else {
                if fd >= 0 { close(fd) }
                descriptor = nil
            }
        #else
            descriptor = nil
        #endif
    }

    deinit { if let descriptor { close(descriptor) } }

    /// The complete lines written since the last call. Drains the inotify queue first, so a
    /// write after this read wakes the next poll.
    func readLines() -> [String] {
        if let descriptor {
            var events = [UInt8](repeating: 0, count: 4096)
            while read(descriptor, &events, events.count) > 0 {}
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 65536)
        var lines: [String] = []
        while true {
            let n = pread(fd, &chunk, chunk.count, off_t(offset))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            offset += n
            partial += chunk[0..<n]
            while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                lines.append(String(decoding: partial[..<newline], as: UTF8.self))
                partial.removeSubrange(...newline)
            }
        }
        return lines
    }
}
