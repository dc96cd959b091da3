import ConfabChat
import ConfabEngine
import Foundation

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
        let writers = ConcurrentWriters(threads: config.writers)
        let backToBack: @Sendable (Int) -> (Int) throws -> Bool = { _ in
            { _ in
                try write()
                return true
            }
        }
        _ = writers.run(seconds: config.warmupSeconds, writer: backToBack)
        Progress.log("[engine] durable: \(config.peakSeconds) s, \(config.writers) threads")
        let r = writers.run(seconds: config.peakSeconds, writer: backToBack)
        let rate = Double(r.writes) / r.seconds
        Progress.log(String(format: "[engine] %.0f durable writes/s (%d writes)", rate, r.writes))
        return Result(
            writesPerSecond: rate, writes: r.writes, seconds: r.seconds, ack: LatencySummary(r.acks),
            firstError: r.error)
    }
}
