import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Times when no thread of this machine could run: a real-time (SCHED_FIFO) thread sleeps 1 ms at
/// a time, and any wake-up more than 2 ms late is a stall. Nothing in the guest outranks that
/// thread, so a late wake-up means the virtual CPUs themselves were not running.
///
/// Why: on 2026-12-07 this machine (a VM with 2 vCPUs) stopped both vCPUs for 2 to 19 ms once
/// every 100 ms, always at the same point of the 100 ms cycle, whenever its two vCPUs were busy
/// and it also issued fdatasyncs: two spinning processes with one fdatasync loop beside them saw
/// 7 to 17 ms gaps every 100 ms; the same two without the fdatasyncs saw none (`confab-bench
/// machine` repeats this). That is the host's CPU quota (a 100 ms period) charging the disk work
/// done for the VM to the VM. Every request in flight during a stall waits it out, so at the loads
/// where the benchmarks measure their p99 the stalls set the tail, whatever the code does; each
/// latency phase therefore reports them beside its percentiles.
final class MachineStallProbe: @unchecked Sendable {
    struct Stall: Sendable {
        /// Monotonic ns (`ProcessIO.nowNanos`) when the probe should have woken.
        var start: UInt64
        var nanos: UInt64
        var end: UInt64 { start + nanos }
    }

    struct Summary: Sendable {
        var count: Int
        var totalMs: Double
        var maxMs: Double
        /// Share of the stalls that start in the same 10 ms slot of a 100 ms cycle (nil below five
        /// stalls): near 1 when a 100 ms quota period causes them, near 0.1 when they are random.
        var samePhaseShare: Double?
        /// The probe thread got SCHED_FIFO; without it (not root) a busy guest also delays it, and
        /// the counts include ordinary CPU contention.
        var realtime: Bool

        var json: [String: Any] {
            [
                "count": count, "total_ms": totalMs, "max_ms": maxMs,
                "same_100ms_phase_share": samePhaseShare as Any? ?? NSNull(), "realtime": realtime,
            ]
        }

        var text: String {
            count == 0
                ? "none"
                : String(format: "%d, %.0f ms in all, longest %.1f ms", count, totalMs, maxMs)
                    + (samePhaseShare.map { String(format: ", %.0f%% at one 100 ms phase", $0 * 100) } ?? "")
        }
    }

    static let shared = MachineStallProbe()

    static let tickNanos: UInt64 = 1_000_000
    static let thresholdNanos: UInt64 = 2_000_000

    private let lock = NSLock()
    private var stalls: [Stall] = []
    private var started = false
    private var isRealtime = false

    /// Whether the probe thread runs (summaries are nil otherwise).
    var isRunning: Bool { lock.withLock { started } }

    /// Starts the probe thread once; it runs until the process exits. `CONFAB_BENCH_STALL_PROBE`
    /// set to 1 or 0 overrides `byDefault` (unless `always`).
    ///
    /// Why not always: it wakes a thousand times a second, and it has been shown harmless only in
    /// the ring benchmark (three alternating pairs, no difference). In the chat benchmark at
    /// 2,000 sends/s, the edge of the two cores, two alternating pairs gave a 1:1 p99 of 263 and
    /// 293 ms with it against 166 and 92 ms without; a later run without it gave 955 ms, so that
    /// figure varies more than the pairs differ, but until it is shown harmless there it is off
    /// by default in the chat and storage benchmarks.
    func start(byDefault: Bool, always: Bool = false) {
        let wanted =
            always
            || (ProcessInfo.processInfo.environment["CONFAB_BENCH_STALL_PROBE"].map { $0 == "1" } ?? byDefault)
        let first = lock.withLock {
            guard wanted, !started else { return false }
            started = true
            return true
        }
        guard first else { return }
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            var param = sched_param(sched_priority: 10)
            let realtime = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param) == 0
            lock.withLock { isRealtime = realtime }
            ready.signal()
            run()
        }
        thread.name = "stall-probe"
        thread.start()
        ready.wait()
    }

    private func run() {
        var last = ProcessIO.nowNanos()
        var ts = timespec(tv_sec: 0, tv_nsec: Int(Self.tickNanos))
        while true {
            nanosleep(&ts, nil)
            let now = ProcessIO.nowNanos()
            let gap = now &- last
            if gap > Self.tickNanos + Self.thresholdNanos {
                let stall = Stall(start: last + Self.tickNanos, nanos: gap - Self.tickNanos)
                lock.withLock { stalls.append(stall) }
            }
            last = now
        }
    }

    /// Stalls that overlap [from, to] (monotonic ns).
    func stalls(from: UInt64, to: UInt64) -> [Stall] {
        lock.withLock { stalls.filter { $0.start < to && $0.end > from } }
    }

    /// nil when the probe does not run.
    func summary(from: UInt64, to: UInt64) -> Summary? {
        summary(of: stalls(from: from, to: to))
    }

    /// The summary of stalls already taken with `stalls(from:to:)`; nil when the probe does not run.
    func summary(of found: [Stall]) -> Summary? {
        guard isRunning else { return nil }
        let realtime = lock.withLock { isRealtime }
        var share: Double?
        if found.count >= 5 {
            // The 10 ms slot (of ten per 100 ms, sliding by 1 ms) holding the most stall starts.
            let phases = found.map { Int(($0.start / 1_000_000) % 100) }
            var best = 0
            for slot in 0..<100 {
                let n = phases.filter { ($0 - slot + 100) % 100 < 10 }.count
                best = max(best, n)
            }
            share = Double(best) / Double(found.count)
        }
        return Summary(
            count: found.count, totalMs: Double(found.reduce(0) { $0 + $1.nanos }) / 1e6,
            maxMs: Double(found.map(\.nanos).max() ?? 0) / 1e6, samePhaseShare: share, realtime: realtime)
    }
}
