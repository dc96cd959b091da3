import Foundation
import Histogram

#if canImport(Glibc)
    import Glibc
#endif

/// How many fdatasyncs the disk under the rings completes, and how long each takes, with one
/// syncing thread and with three (each on its own file, as three nodes on one machine are).
///
/// Why: every acknowledged write waits for an fdatasync, and the local rings put all their nodes'
/// logs on one disk. Three syncing nodes share its flush rate, and each sync waits behind the
/// others': on 2026-12-07, with nothing else running, this machine's disk did 2,600 to 7,800
/// syncs/s with one syncer (p50 0.11 to 0.27 ms), and with three each sync took 0.27 to 0.9 ms at
/// the p50 and 0.45 to 5.4 ms at the p99, the rate varying from hour to hour. That is a floor under
/// the RF-3 write latency that no change to the nodes removes, so every run measures it.
struct DiskSyncProbe {
    /// Bytes written before each sync (about one chat message's WAL record).
    static let recordBytes = 600

    struct Result: Sendable {
        var syncers: Int
        /// Syncs completed per second, all syncers together.
        var syncsPerSecond: Double
        var latency: LatencySummary
    }

    let directory: String
    let seconds: Double

    func run(syncers: Int) throws -> Result {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let files = try (0..<syncers).map { i -> Int32 in
            let path = "\(directory)/sync-probe-\(i)"
            let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
            guard fd >= 0 else { throw RingBenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
            // Preallocated, as the WAL is: the syncs then write data, not file size.
            _ = posix_fallocate(fd, 0, 64 << 20)
            _ = fdatasync(fd)
            return fd
        }
        defer {
            for (i, fd) in files.enumerated() {
                close(fd)
                unlink("\(directory)/sync-probe-\(i)")
            }
        }
        let shared = Shared()
        let done = DispatchSemaphore(value: 0)
        let start = ProcessIO.nowNanos()
        let deadline = start + UInt64(seconds * 1e9)
        for fd in files {
            // Threads of their own (not a pool capped at the core count): three syncers must
            // really be three, whatever the cores.
            let thread = Thread {
                var h = Latency.histogram()
                let record = [UInt8](repeating: 0x78, count: Self.recordBytes)
                var offset: off_t = 0
                var error: String?
                while ProcessIO.nowNanos() < deadline {
                    let t0 = ProcessIO.nowNanos()
                    let wrote = record.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset) }
                    guard wrote == record.count, fdatasync(fd) == 0 else {
                        error = String(cString: strerror(errno))
                        break
                    }
                    _ = h.record(max(1, ProcessIO.nowNanos() - t0))
                    offset = (offset + off_t(record.count)) % off_t(60 << 20)
                }
                shared.add(h, error: error)
                done.signal()
            }
            thread.start()
        }
        for _ in files { done.wait() }
        let (total, failure) = shared.value
        if let failure { throw RingBenchError("fdatasync probe in \(directory) failed: \(failure)") }
        let elapsed = Double(ProcessIO.nowNanos() - start) / 1e9
        return Result(
            syncers: syncers, syncsPerSecond: Double(total.totalCount) / elapsed, latency: LatencySummary(total))
    }

    /// The syncers' latencies merged, and the first failure.
    private final class Shared: @unchecked Sendable {
        private let lock = NSLock()
        private var total = Latency.histogram()
        private var failure: String?

        func add(_ h: Histogram<UInt64>, error: String?) {
            lock.withLock {
                total.add(h)
                if failure == nil { failure = error }
            }
        }

        var value: (Histogram<UInt64>, String?) { lock.withLock { (total, failure) } }
    }
}
