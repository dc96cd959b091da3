import Foundation
import Histogram

/// Sizes and rates of one run; `--quick` picks the small set, the default the full one.
struct BenchConfig: Sendable {
    var workload: WorkloadConfig
    var quick: Bool
    /// Open-loop request rate for each read kind.
    var readRatePerSecond: Double
    var readRequests: Int
    var writerThreads: Int
    /// The durable phases run for a fixed time (long enough to average over disk hiccups);
    /// each writer thread has this many fresh messages to draw from.
    var durablePoolPerThread: Int
    var durableSeconds: Double
    var singleSyncPool: Int
    var singleSyncSeconds: Double
    /// Messages the recovery child writes before it is killed.
    var recoveryMessages: Int
    var pageLimit = 50
    /// Deep-page reads start up to this many messages closer to the newest than `deepOffset`,
    /// so they do not all hit the same block.
    var deepJitter = 1_000

    static func make(quick: Bool, seed: UInt64) -> BenchConfig {
        if quick {
            let deep = 50_000
            return BenchConfig(
                workload: WorkloadConfig(
                    seed: seed, chats: 2_000, messages: 250_000, deepOffset: deep,
                    deepChatMessages: deep + 2_000),
                quick: true, readRatePerSecond: 2_000, readRequests: 8_000, writerThreads: 64,
                durablePoolPerThread: 3_000, durableSeconds: 3, singleSyncPool: 40_000, singleSyncSeconds: 2,
                recoveryMessages: 100_000)
        }
        let deep = 1_000_000
        return BenchConfig(
            workload: WorkloadConfig(
                seed: seed, chats: 10_000, messages: 2_500_000, deepOffset: deep,
                deepChatMessages: deep + 2_000),
            quick: false, readRatePerSecond: 2_000, readRequests: 30_000, writerThreads: 64,
            durablePoolPerThread: 10_000, durableSeconds: 10, singleSyncPool: 200_000, singleSyncSeconds: 10,
            recoveryMessages: 1_000_000)
    }
}

/// What one system measured: numeric metrics by JSON key, plus notes (durability, errors).
final class SystemReport: @unchecked Sendable {
    let name: String
    var metrics: [String: Double] = [:]
    var notes: [String: String] = [:]
    var errors: [String] = []
    init(name: String) { self.name = name }
}

/// Runs every phase against each chosen system in the same process. Phases go system by system
/// for ingest and recovery; reads and the durable-write phases are split into rounds that rotate
/// through the systems, so a burst of other load on the machine lands on all of them alike.
struct StorageBenchmark {
    let config: BenchConfig
    let workload: Workload
    let root: String
    let keepData: Bool
    /// Reads and durable phases are measured in this many rounds, rotating through the systems.
    let rounds = 4

    /// One system under test, with the store that stays open from ingest through the reads.
    private final class Entry {
        let type: any StorageSystem.Type
        let report: SystemReport
        var store: (any StorageSystem)?
        let scratch = KVScratch()
        init(_ type: any StorageSystem.Type) {
            self.type = type
            report = SystemReport(name: type.name)
        }
    }

    func run(systems: [any StorageSystem.Type]) -> [SystemReport] {
        let entries = systems.map(Entry.init)
        for e in entries {
            for d in Durability.allCases { e.report.notes["durability_\(d.rawValue)"] = e.type.describe(d) }
            e.report.notes["version"] = e.type.version
            let dir = root + "/" + e.type.name
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        func attempt(_ e: Entry, _ phase: String, _ body: () throws -> Void) {
            do { try body() } catch {
                Progress.log("[\(e.type.name)] \(phase) FAILED: \(error)")
                e.report.errors.append("\(phase): \(error)")
            }
        }
        for e in entries { attempt(e, "ingest") { e.store = try ingest(e) } }
        attempt(entries[0], "reads") { try reads(entries.filter { $0.store != nil }) }
        for e in entries {
            attempt(e, "close") { try e.store?.close() }
            e.store = nil
        }
        attempt(entries[0], "durable") { try durable(entries, threads: config.writerThreads) }
        attempt(entries[0], "single writer") { try durable(entries, threads: 1) }
        for e in entries { attempt(e, "recovery") { try recovery(e.type, dir: path(e, "recovery"), report: e.report) } }
        if !keepData {
            for e in entries { try? FileManager.default.removeItem(atPath: root + "/" + e.type.name) }
        }
        return entries.map(\.report)
    }

    private func path(_ e: Entry, _ phase: String) -> String { root + "/" + e.type.name + "/" + phase }

    // MARK: Phase 1: bulk ingest, space, write amplification

    private func ingest(_ e: Entry) throws -> any StorageSystem {
        let (type, report, scratch) = (e.type, e.report, e.scratch)
        let name = type.name
        let dir = path(e, "ingest")
        let messages = workload.messages
        Progress.log("[\(name)] ingest: \(messages.count) messages, single writer, \(type.describe(.buffered))")
        let w0 = ProcessIO.writtenBytes() ?? 0
        let system = try type.init(directory: dir, durability: .buffered, workload: workload)
        let t0 = ProcessIO.nowNanos()
        var lastReport = t0
        for (i, m) in messages.enumerated() {
            try system.write(m, scratch: scratch)
            if i & 1023 == 1023 {
                let now = ProcessIO.nowNanos()
                if now - lastReport > 2_000_000_000 {
                    lastReport = now
                    let rate = Double(i + 1) / (Double(now - t0) / 1e9)
                    Progress.log("  [\(name)] ingest \(i + 1)/\(messages.count) (\(Int(rate))/s)")
                }
            }
        }
        let t1 = ProcessIO.nowNanos()
        try system.finishIngest()
        let t2 = ProcessIO.nowNanos()
        let seconds = Double(t2 - t0) / 1e9
        report.metrics["ingest_per_s"] = Double(messages.count) / seconds
        report.metrics["ingest_seconds"] = seconds
        report.metrics["ingest_final_durable_seconds"] = Double(t2 - t1) / 1e9
        Progress.log("  [\(name)] ingest done: \(Int(Double(messages.count) / seconds))/s; settling background work")

        let s0 = ProcessIO.nowNanos()
        try system.settle()
        ProcessIO.waitForWriteQuiet(quietMillis: 300, maxSeconds: 120)
        report.metrics["settle_seconds"] = Double(ProcessIO.nowNanos() - s0) / 1e9
        let w1 = ProcessIO.writtenBytes() ?? 0
        let disk = ProcessIO.directoryBytes(dir)
        report.metrics["disk_bytes"] = Double(disk)
        report.metrics["bytes_per_message"] = Double(disk) / Double(messages.count)
        report.metrics["write_bytes"] = Double(w1 - w0)
        report.metrics["write_amplification"] = Double(w1 - w0) / Double(workload.logicalBytes)
        for (k, v) in system.ownMetrics() { report.metrics[k] = v }
        Progress.log(
            "  [\(name)] \(fmt(Double(disk) / Double(messages.count))) B/message on disk, write amplification \(fmt(Double(w1 - w0) / Double(workload.logicalBytes)))"
        )
        return system
    }

    // MARK: Phase 2: open-loop reads, in rounds across the open stores

    private func reads(_ entries: [Entry]) throws {
        guard !entries.isEmpty else { return }
        var rng = SeededRNG(seed: config.workload.seed ^ 0x1A7E_57)
        let n = config.readRequests
        let chats = (0..<n).map { _ in workload.chatIdsByRank[workload.zipf.sample(&rng)] }
        let deep = workload.deepTimestamps
        let offsets = (0..<n).map { _ in
            deep.count - config.workload.deepOffset - Int(rng.next() % UInt64(config.deepJitter))
        }
        precondition(offsets.allSatisfy { $0 - config.pageLimit >= 0 }, "deep chat too short for deep_offset")
        let limit = config.pageLimit
        let kinds: [(key: String, op: (any StorageSystem, KVScratch, Int) throws -> Int)] = [
            ("latest50", { s, scratch, i in try s.latest(chat: chats[i], limit: limit, scratch: scratch) }),
            (
                "deep50",
                { s, scratch, i in
                    try s.page(chat: Workload.deepChatId, before: deep[offsets[i]], limit: limit, scratch: scratch)
                }
            ),
        ]
        Progress.log(
            "reads: \(n) requests per kind and system, open-loop at \(Int(config.readRatePerSecond))/s, in \(rounds) rounds rotating through \(entries.map { $0.type.name }.joined(separator: ", "))"
        )
        // Closed-loop warm-up of a tenth of the requests.
        for e in entries {
            for k in kinds { for i in 0..<(n / 10) { _ = try k.op(e.store!, e.scratch, i) } }
        }
        var latency: [String: Histogram<UInt64>] = [:]
        var service: [String: Histogram<UInt64>] = [:]
        var rows: [String: Int] = [:]
        let perRound = (n + rounds - 1) / rounds
        for r in 0..<rounds {
            let range = (r * perRound)..<min(n, (r + 1) * perRound)
            for e in entries {
                for k in kinds {
                    let id = e.type.name + "/" + k.key
                    var count = 0
                    let store = e.store!
                    let (l, sv) = try OpenLoop(ratePerSecond: config.readRatePerSecond, requests: range.count)
                        .run { j in count += try k.op(store, e.scratch, range.lowerBound + j) }
                    latency[id, default: Latency.histogram()].add(l)
                    service[id, default: Latency.histogram()].add(sv)
                    rows[id, default: 0] += count
                }
            }
            Progress.log("  reads: round \(r + 1)/\(rounds) done")
        }
        for e in entries {
            for k in kinds {
                let id = e.type.name + "/" + k.key
                let summary = LatencySummary(latency[id]!)
                let sv = LatencySummary(service[id]!)
                let avg = Double(rows[id]!) / Double(n)
                let report = e.report
                report.metrics["\(k.key)_p50_us"] = summary.p50
                report.metrics["\(k.key)_p99_us"] = summary.p99
                report.metrics["\(k.key)_p999_us"] = summary.p999
                report.metrics["\(k.key)_max_us"] = summary.max
                report.metrics["\(k.key)_service_p50_us"] = sv.p50
                report.metrics["\(k.key)_service_p99_us"] = sv.p99
                report.metrics["\(k.key)_rate_per_s"] = config.readRatePerSecond
                report.metrics["\(k.key)_rows_avg"] = avg
                Progress.log(
                    "  [\(e.type.name)] \(k.key): p50 \(fmt(summary.p50)) µs, p99 \(fmt(summary.p99)) µs, p99.9 \(fmt(summary.p999)) µs (service time p99 \(fmt(sv.p99)) µs), \(fmt(avg)) rows/request"
                )
                if k.key == "deep50" {
                    report.metrics["deep_offset"] = Double(config.workload.deepOffset)
                    if avg < Double(limit) {
                        report.errors.append("deep50 returned \(fmt(avg)) rows on average, expected \(limit)")
                    }
                }
            }
        }
    }

    // MARK: Phase 3: durable writes (64 writers, then 1), in rounds across systems

    /// Each round opens a fresh store per system and writes for a share of the phase's time.
    private func durable(_ entries: [Entry], threads: Int) throws {
        let group = threads > 1
        let seconds = (group ? config.durableSeconds : config.singleSyncSeconds) / Double(rounds)
        let pool = group ? config.durablePoolPerThread * threads : config.singleSyncPool
        let messages = workload.extraMessages(count: pool, stream: group ? 1 : 2)
        Progress.log(
            group
                ? "durable: \(threads) writer threads, \(rounds) rounds of \(fmt(seconds)) s per system"
                : "single writer: \(rounds) rounds of \(fmt(seconds)) s per system")
        var acks: [String: Histogram<UInt64>] = [:]
        var writes: [String: Int] = [:]
        var elapsed: [String: Double] = [:]
        var stallCount: [String: Int] = [:]
        var stallMs: [String: Double] = [:]
        for r in 0..<rounds {
            for e in entries where !e.report.errors.contains(where: { $0.hasPrefix(group ? "durable" : "single") }) {
                let name = e.type.name
                do {
                    let dir = path(e, group ? "durable-\(r)" : "single-\(r)")
                    let system = try e.type.init(
                        directory: dir, durability: group ? .groupSync : .singleSync, workload: workload)
                    let t0 = ProcessIO.nowNanos()
                    let res = ConcurrentWriters(threads: threads).run(
                        messages: messages, system: system, maxSeconds: seconds)
                    if let stalls = MachineStallProbe.shared.summary(from: t0, to: ProcessIO.nowNanos()) {
                        stallCount[name, default: 0] += stalls.count
                        stallMs[name, default: 0] += stalls.totalMs
                    }
                    try system.close()
                    try? FileManager.default.removeItem(atPath: dir)
                    if let err = res.error { throw BenchError(err) }
                    acks[name, default: Latency.histogram()].add(res.acks)
                    writes[name, default: 0] += res.writes
                    elapsed[name, default: 0] += res.seconds
                    Progress.log(
                        "  [\(name)] \(group ? "durable" : "single writer") round \(r + 1)/\(rounds): \(Int(Double(res.writes) / res.seconds))/s"
                    )
                } catch {
                    Progress.log("[\(name)] \(group ? "durable" : "single writer") FAILED: \(error)")
                    e.report.errors.append("\(group ? "durable" : "single writer"): \(error)")
                }
            }
        }
        for e in entries {
            let name = e.type.name
            guard let h = acks[name], let w = writes[name], let t = elapsed[name], t > 0 else { continue }
            let s = LatencySummary(h)
            let rate = Double(w) / t
            let report = e.report
            if group {
                report.metrics["durable_ingest_per_s"] = rate
                report.metrics["durable_writes"] = Double(w)
                report.metrics["durable_threads"] = Double(threads)
                report.metrics["durable_ack_p50_us"] = s.p50
                report.metrics["durable_ack_p99_us"] = s.p99
                report.metrics["durable_ack_p999_us"] = s.p999
                report.metrics["durable_ack_max_us"] = s.max
                let probed = MachineStallProbe.shared.isRunning
                if probed {
                    report.metrics["durable_machine_stalls"] = Double(stallCount[name] ?? 0)
                    report.metrics["durable_machine_stall_ms"] = stallMs[name] ?? 0
                }
                Progress.log(
                    "  [\(name)] durable: \(Int(rate))/s, ack p50 \(fmt(s.p50)) µs, p99 \(fmt(s.p99)) µs"
                        + (probed ? "; machine stalls: \(stallCount[name] ?? 0), \(fmt(stallMs[name] ?? 0)) ms" : "")
                )
            } else {
                report.metrics["single_writer_sync_per_s"] = rate
                report.metrics["single_writer_writes"] = Double(w)
                report.metrics["single_writer_ack_p99_us"] = s.p99
                if let g = report.metrics["durable_ingest_per_s"] { report.metrics["group_commit_ratio"] = g / rate }
                Progress.log("  [\(name)] single writer: \(Int(rate))/s, ack p99 \(fmt(s.p99)) µs")
            }
        }
    }

    // MARK: Phase 4: recovery after kill -9

    private func recovery(_ type: any StorageSystem.Type, dir: String, report: SystemReport) throws {
        let n = min(config.recoveryMessages, workload.messages.count)
        Progress.log("[\(type.name)] recovery: child writes \(n) messages without sync, then SIGKILL")
        let workloadJSON = String(decoding: try JSONEncoder().encode(config.workload), as: UTF8.self)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: ProcessIO.executablePath())
        child.arguments = [
            "recovery-child", "--system", type.name, "--dir", dir, "--count", String(n),
            "--workload", workloadJSON,
        ]
        let out = Pipe()
        child.standardOutput = out
        try child.run()
        var seen = Data()
        let reader = out.fileHandleForReading
        while !String(decoding: seen, as: UTF8.self).contains("ready") {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
        }
        guard String(decoding: seen, as: UTF8.self).contains("ready") else {
            child.waitUntilExit()
            throw BenchError("recovery child exited (status \(child.terminationStatus)) without reporting ready")
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()

        let hottest = workload.chatIdsByRank[0]
        let scratch = KVScratch()
        let t0 = ProcessIO.nowNanos()
        let system = try type.init(directory: dir, durability: .buffered, workload: workload)
        let rows = try system.latest(chat: hottest, limit: config.pageLimit, scratch: scratch)
        let ms = Double(ProcessIO.nowNanos() - t0) / 1e6
        try system.close()
        report.metrics["recovery_ms"] = ms
        report.metrics["recovery_messages"] = Double(n)
        report.metrics["recovery_rows_read"] = Double(rows)
        Progress.log("  [\(type.name)] recovery: open + read latest 50 in \(fmt(ms)) ms (\(rows) rows)")
    }
}

/// Runs inside the recovery child: writes `count` messages without sync, says "ready", waits to
/// be killed.
enum RecoveryChild {
    static func run(system name: String, directory: String, count: Int, workload config: WorkloadConfig) throws -> Never
    {
        guard let type = Systems.named(name) else { throw BenchError("unknown system \(name)") }
        let workload = Workload(config: config)
        let system = try type.init(directory: directory, durability: .buffered, workload: workload)
        let scratch = KVScratch()
        for m in workload.messages.prefix(count) { try system.write(m, scratch: scratch) }
        try system.commitPending()
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        while true { sleep(60) }
    }
}

func fmt(_ v: Double) -> String {
    if v.isNaN { return "-" }
    if abs(v) >= 1000 { return String(format: "%.0f", v) }
    if abs(v) >= 10 { return String(format: "%.1f", v) }
    return String(format: "%.2f", v)
}
