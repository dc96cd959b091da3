import Foundation
import Histogram

/// Latency summary in microseconds, taken from an HdrHistogram of nanoseconds.
struct LatencySummary: Sendable {
    var count: UInt64
    var p50: Double
    var p99: Double
    var p999: Double
    var max: Double

    init(_ h: Histogram<UInt64>) {
        count = h.totalCount
        p50 = Double(h.valueAtPercentile(50)) / 1000
        p99 = Double(h.valueAtPercentile(99)) / 1000
        p999 = Double(h.valueAtPercentile(99.9)) / 1000
        max = Double(h.max) / 1000
    }
}

enum Latency {
    /// A histogram of nanoseconds from 1 ns to 10 minutes, 3 significant digits.
    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000_000,
            numberOfSignificantValueDigits: .three)
    }
}

/// Runs requests open-loop: request i is due at start + i / rate, whether or not earlier ones
/// have finished. Latency is completion time minus the *intended* start time, so a stall delays
/// every request scheduled behind it and shows in the percentiles (no coordinated omission).
struct OpenLoop {
    var ratePerSecond: Double
    var requests: Int

    /// `operation(i)` runs request i on the calling thread. Returns histograms (ns) of the
    /// open-loop latency and, for diagnosis, of the service time (completion − actual start),
    /// which hides queueing.
    func run(_ operation: (Int) throws -> Void) rethrows
        -> (latency: Histogram<UInt64>, service: Histogram<UInt64>)
    {
        var hist = Latency.histogram()
        var serviceHist = Latency.histogram()
        let interval = 1e9 / ratePerSecond
        let start = ProcessIO.nowNanos() + 1_000_000
        for i in 0..<requests {
            let intended = start + UInt64(Double(i) * interval)
            ProcessIO.sleep(untilNanos: intended)
            let began = ProcessIO.nowNanos()
            try operation(i)
            let done = ProcessIO.nowNanos()
            _ = hist.record(max(1, done - intended))
            _ = serviceHist.record(max(1, done - began))
        }
        return (hist, serviceHist)
    }
}

/// Many Foundation threads writing at once, each timing its own acknowledgements.
struct ConcurrentWriters {
    var threads: Int

    /// Splits `messages` among the threads; each stops once `maxSeconds` have passed since the
    /// start (or its share runs out). Returns wall seconds, writes acknowledged, the ack-latency
    /// histogram (ns) and the first error.
    func run(messages: [MessageRecord], system: any StorageSystem, maxSeconds: Double)
        -> (seconds: Double, writes: Int, acks: Histogram<UInt64>, error: String?)
    {
        let perThread = messages.count / threads
        return run(seconds: maxSeconds) { t in
            let scratch = KVScratch()
            let slice = messages[(t * perThread)..<((t + 1) * perThread)]
            return { n in
                guard n < slice.count else { return false }
                try system.write(slice[slice.startIndex + n], scratch: scratch)
                return true
            }
        }
    }

    /// The threads, released together from a start gate, each calling its own writer (made on the
    /// thread by `writer(threadIndex)`) with 0, 1, 2, … until `seconds` have passed, the writer
    /// returns false (its work ran out) or throws. Each call is one timed acknowledgement.
    func run(seconds: Double, writer: @escaping @Sendable (Int) -> (Int) throws -> Bool)
        -> (seconds: Double, writes: Int, acks: Histogram<UInt64>, error: String?)
    {
        let state = SharedState(threads: threads)
        for t in 0..<threads {
            let thread = Thread {
                let write = writer(t)
                var hist = Latency.histogram()
                var failure: String?
                var written = 0
                let deadline = state.awaitStart()
                while true {
                    let t0 = ProcessIO.nowNanos()
                    if t0 > deadline { break }
                    do { guard try write(written) else { break } } catch {
                        failure = "\(error)"
                        break
                    }
                    _ = hist.record(max(1, ProcessIO.nowNanos() - t0))
                    written += 1
                }
                state.finish(hist, written, failure)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        state.waitReady()
        let t0 = ProcessIO.nowNanos()
        state.release(deadline: t0 + UInt64(seconds * 1e9))
        let merged = state.waitDone()
        let seconds = Double(ProcessIO.nowNanos() - t0) / 1e9
        return (seconds, state.written, merged, state.error)
    }

    /// Start gate, completion count and merged histogram, behind one condition variable.
    private final class SharedState: @unchecked Sendable {
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

        /// Blocks until the start; returns the deadline.
        func awaitStart() -> UInt64 {
            cond.lock()
            ready += 1
            cond.broadcast()
            while !started { cond.wait() }
            let d = deadline
            cond.unlock()
            return d
        }

        func waitReady() {
            cond.lock()
            while ready < threads { cond.wait() }
            cond.unlock()
        }

        func release(deadline: UInt64) {
            cond.lock()
            self.deadline = deadline
            started = true
            cond.broadcast()
            cond.unlock()
        }

        func finish(_ h: Histogram<UInt64>, _ count: Int, _ failure: String?) {
            cond.lock()
            merged.add(h)
            written += count
            if error == nil { error = failure }
            done += 1
            cond.broadcast()
            cond.unlock()
        }

        func waitDone() -> Histogram<UInt64> {
            cond.lock()
            while done < threads { cond.wait() }
            let h = merged
            cond.unlock()
            return h
        }
    }
}
