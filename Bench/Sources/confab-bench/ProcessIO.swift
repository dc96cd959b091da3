import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Process-level measurements: a monotonic clock, write-syscall byte counts, on-disk sizes.
enum ProcessIO {
    /// Monotonic nanoseconds (CLOCK_MONOTONIC), comparable across threads.
    @inline(__always)
    static func nowNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// CPU time (user + system) this process has used, every thread included.
    static func cpuNanos() -> UInt64 {
        var usage = rusage()
        #if canImport(Glibc)
            getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
            getrusage(RUSAGE_SELF, &usage)
        #endif
        func ns(_ t: timeval) -> UInt64 { UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_usec) * 1_000 }
        return ns(usage.ru_utime) + ns(usage.ru_stime)
    }

    /// Bytes this process (every thread, including library background threads) has passed to
    /// write-family syscalls: the `wchar` line of /proc/self/io. Nil where /proc is missing.
    static func writtenBytes() -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
            return UInt64(line.dropFirst("wchar:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Bytes of data in every regular file under `path`: each file's apparent size (st_size) less
    /// its holes, found with SEEK_DATA / SEEK_HOLE (whole blocks), so space a store reserved with
    /// `posix_fallocate` and never wrote is not counted as stored data. Confab preallocates each WAL
    /// segment to 64 MiB (st_size included); counted whole, the empty segment open after a quick
    /// ingest added 268 bytes to every one of its 250,000 messages. A file whose holes cannot be
    /// asked for counts whole.
    static func directoryBytes(_ path: String) -> UInt64 {
        var total: UInt64 = 0
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        while let rel = walker.nextObject() as? String {
            var st = stat()
            if lstat(path + "/" + rel, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
                total += dataBytes(path + "/" + rel, size: Int64(st.st_size))
            }
        }
        return total
    }

    /// Linux's whence values (glibc defines them only under _GNU_SOURCE, which Swift's Glibc
    /// module does not import).
    private static let seekData: Int32 = 3
    private static let seekHole: Int32 = 4

    private static func dataBytes(_ file: String, size: Int64) -> UInt64 {
        let fd = open(file, O_RDONLY)
        guard fd >= 0 else { return UInt64(size) }
        defer { close(fd) }
        var data: Int64 = 0
        var offset: Int64 = 0
        while offset < size {
            let start = lseek(fd, off_t(offset), seekData)
            if start < 0 {
                // ENXIO: no data after `offset`; anything else: holes cannot be asked for.
                return errno == ENXIO ? UInt64(data) : UInt64(size)
            }
            let end = lseek(fd, off_t(start), seekHole)
            guard end >= start else { return UInt64(size) }
            data += min(Int64(end), size) - Int64(start)
            offset = Int64(end)
        }
        return UInt64(data)
    }

    /// Path of the running executable, to start it again as a child.
    static func executablePath() -> String {
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        return CommandLine.arguments[0]
    }

    /// Waits until the monotonic clock reaches `deadline`: nanosleep while more than 2 ms away,
    /// then spins. Spinning keeps the thread on its core, so the wait does not end late because
    /// the scheduler was slow to wake it (on a busy 2-core machine a wakeup can take
    /// milliseconds, which would show up as store latency). No sched_yield either: it can hand the
    /// core to another process for a whole time slice.
    static func sleep(untilNanos deadline: UInt64) {
        while true {
            let now = nowNanos()
            if now >= deadline { return }
            let left = deadline - now
            if left > 2_000_000 {
                let nap = left - 1_000_000
                var ts = timespec(tv_sec: Int(nap / 1_000_000_000), tv_nsec: Int(nap % 1_000_000_000))
                nanosleep(&ts, nil)
            }
        }
    }

    /// Asks the kernel for 1 µs timer slack (default 50 µs) so open-loop sleeps end on time.
    static func tightenTimerSlack() {
        // The calling (main) thread's slack; the open-loop reader runs on it.
        try? "1".write(toFile: "/proc/thread-self/timerslack_ns", atomically: false, encoding: .utf8)
    }

    /// Waits until no write syscalls have been made for `quietMillis` (library background work
    /// done), or `maxSeconds` passed. Returns the seconds waited.
    @discardableResult
    static func waitForWriteQuiet(quietMillis: Int = 500, maxSeconds: Double = 60) -> Double {
        let start = nowNanos()
        var last = writtenBytes() ?? 0
        var quietSince = nowNanos()
        while true {
            usleep(50_000)
            let now = nowNanos()
            let w = writtenBytes() ?? 0
            if w != last {
                last = w
                quietSince = now
            }
            if now - quietSince >= UInt64(quietMillis) * 1_000_000 { break }
            if Double(now - start) / 1e9 >= maxSeconds { break }
        }
        return Double(nowNanos() - start) / 1e9
    }
}

/// Progress lines on stderr (never stdout, which the recovery child uses to talk to its parent).
enum Progress {
    static func log(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
