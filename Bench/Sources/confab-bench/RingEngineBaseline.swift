import ConfabChat
import ConfabEngine
import Foundation
import Histogram

/// The engine's own durable write rate with the ring bench's writers and messages, in this
/// process: the denominator of "single node ÷ engine" (issue 11), measured in the same run so
/// the ratio compares like with like on a shared machine.
///
/// Same shape as the node's writes: `PostedMessages.mutation` rows of the same chats and body
/// size, `SyncMode.group` and a 64 MiB memtable (the node's defaults, `NodeConfiguration`), one
/// Foundation thread per writer, each write acknowledged only after the fdatasync that covers it.
struct RingEngineBaseline {
    let config: RingBenchConfig

    struct Result: Sendable {
        var writesPerSecond: Double
        var writes: Int
        var seconds: Double
        var ack: LatencySummary
        var firstError: String?
    }

    func run(directory: String) throws -> Result {
        var options = EngineOptions()
        options.syncMode = .group
        options.memtableBytes = 64 << 20
        let engine = try StorageEngine.open(directory: directory, options: options)
        defer { try? engine.close() }
        let body = String(repeating: "x", count: config.bodyBytes)
        let chats = UInt64(config.chats)
        let ids = IDSource(prefix: "engine-\(getpid())")
        let write: @Sendable () throws -> Void = {
            let n = ids.next()
            let chat = Int64(((UInt64(n) &* 0x9E37_79B9_7F4A_7C15) >> 20) % chats)
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
            try engine.write(
                PostedMessages.mutation(
                    chatId: chat, timestamp: now, messageId: "\(ids.prefix)-\(n)", sender: "bench",
                    body: body, writeTime: now))
        }
        Progress.log("[engine] warm-up: \(config.warmupSeconds) s, \(config.writers) threads, SyncMode.group")
        _ = Self.threads(config.writers, seconds: config.warmupSeconds, write)
        Progress.log("[engine] durable: \(config.peakSeconds) s, \(config.writers) threads")
        let r = Self.threads(config.writers, seconds: config.peakSeconds, write)
        let rate = Double(r.writes) / r.seconds
        Progress.log(String(format: "[engine] %.0f durable writes/s (%d writes)", rate, r.writes))
        return Result(
            writesPerSecond: rate, writes: r.writes, seconds: r.seconds, ack: LatencySummary(r.acks),
            firstError: r.error)
    }

    /// `count` threads released together, each writing back to back until `seconds` have passed.
    static func threads(_ count: Int, seconds: Double, _ write: @escaping @Sendable () throws -> Void)
        -> (writes: Int, seconds: Double, acks: Histogram<UInt64>, error: String?)
    {
        let gate = Gate(threads: count)
        for _ in 0..<count {
            let thread = Thread {
                var hist = Latency.histogram()
                var written = 0
                var failure: String?
                let deadline = gate.awaitStart()
                while true {
                    let t0 = ProcessIO.nowNanos()
                    if t0 >= deadline { break }
                    do { try write() } catch {
                        failure = "\(error)"
                        break
                    }
                    _ = hist.record(max(1, ProcessIO.nowNanos() - t0))
                    written += 1
                }
                gate.finish(hist, written, failure)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        gate.waitReady()
        let t0 = ProcessIO.nowNanos()
        gate.release(deadline: t0 + UInt64(seconds * 1e9))
        let merged = gate.waitDone()
        return (gate.written, Double(ProcessIO.nowNanos() - t0) / 1e9, merged, gate.error)
    }

    /// Start gate, completion count and merged histogram, behind one condition variable.
    private final class Gate: @unchecked Sendable {
        private let cond = NSCondition()
        private let threads: Int
        private var ready = 0
        private var started = false
        private var done = 0
        private var merged = Latency.histogram()
        private var deadline: UInt64 = .max
        private(set) var written = 0
        private(set) var error: String?

        init(threads: Int) { self.threads = threads }

        func awaitStart() -> UInt64 {
            cond.lock()
            defer { cond.unlock() }
            ready += 1
            cond.broadcast()
            while !started { cond.wait() }
            return deadline
        }

        func waitReady() {
            cond.lock()
            defer { cond.unlock() }
            while ready < threads { cond.wait() }
        }

        func release(deadline: UInt64) {
            cond.lock()
            defer { cond.unlock() }
            self.deadline = deadline
            started = true
            cond.broadcast()
        }

        func finish(_ h: Histogram<UInt64>, _ count: Int, _ failure: String?) {
            cond.lock()
            defer { cond.unlock() }
            merged.add(h)
            written += count
            if error == nil { error = failure }
            done += 1
            cond.broadcast()
        }

        func waitDone() -> Histogram<UInt64> {
            cond.lock()
            defer { cond.unlock() }
            while done < threads { cond.wait() }
            return merged
        }
    }
}
