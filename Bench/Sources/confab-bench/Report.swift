import Foundation

/// One target from the issue, evaluated on ratios within this run.
struct TargetResult: Sendable {
    var name: String
    /// The value compared (a ratio or a latency), nil when a needed system or metric is missing.
    var value: Double?
    var threshold: Double
    /// true: value must be ≥ threshold; false: value must be ≤ threshold.
    var atLeast: Bool
    var unit: String

    var met: Bool? { value.map { atLeast ? $0 >= threshold : $0 <= threshold } }
}

/// Turns the per-system reports into the terminal table, the targets, and the JSON document.
struct Report {
    let config: BenchConfig
    let workload: Workload
    let systems: [SystemReport]
    let wallSeconds: Double
    /// The nice value the run had (0 = default priority).
    let nice: Int

    private func metric(_ system: String, _ key: String) -> Double? {
        systems.first { $0.name == system }?.metrics[key]
    }

    private func ratio(_ a: Double?, _ b: Double?) -> Double? {
        guard let a, let b, b != 0 else { return nil }
        return a / b
    }

    var targets: [TargetResult] {
        let c = { (k: String) in metric("confab", k) }
        return [
            TargetResult(
                name: "ingest vs RocksDB", value: ratio(c("ingest_per_s"), metric("rocksdb", "ingest_per_s")),
                threshold: 1.0, atLeast: true, unit: "×"),
            // Issue 11's form: against the faster of the two LSM engines (LevelDB's ingest is
            // usually the higher), of those in the run.
            TargetResult(
                name: "ingest vs faster of LevelDB/RocksDB",
                value: ratio(
                    c("ingest_per_s"),
                    [metric("leveldb", "ingest_per_s"), metric("rocksdb", "ingest_per_s")].compactMap { $0 }.max()),
                threshold: 1.0, atLeast: true, unit: "×"),
            TargetResult(
                name: "ingest vs SQLite", value: ratio(c("ingest_per_s"), metric("sqlite", "ingest_per_s")),
                threshold: 5.0, atLeast: true, unit: "×"),
            TargetResult(
                name: "group commit vs single-writer fdatasync",
                value: ratio(c("durable_ingest_per_s"), c("single_writer_sync_per_s")),
                threshold: 15.0, atLeast: true, unit: "×"),
            TargetResult(
                name: "durable ack p99", value: c("durable_ack_p99_us"), threshold: 5_000, atLeast: false, unit: "µs"),
            TargetResult(
                name: "latest-50 read p99", value: c("latest50_p99_us"), threshold: 1_000, atLeast: false, unit: "µs"),
            TargetResult(
                name: "latest-50 p99 vs SQLite's",
                value: ratio(c("latest50_p99_us"), metric("sqlite", "latest50_p99_us")),
                threshold: 1.0, atLeast: false, unit: "×"),
            TargetResult(
                name: "deep-page read p99", value: c("deep50_p99_us"), threshold: 2_000, atLeast: false, unit: "µs"),
            TargetResult(
                name: "bytes/message vs RocksDB",
                value: ratio(c("bytes_per_message"), metric("rocksdb", "bytes_per_message")),
                threshold: 1.0, atLeast: false, unit: "×"),
            TargetResult(
                name: "write amplification", value: c("write_amplification"), threshold: 3.0, atLeast: false, unit: "×"),
        ]
    }

    /// Rows of the terminal table: label, JSON key, whether higher is better.
    static let rows: [(String, String, Bool)] = [
        ("ingest msg/s", "ingest_per_s", true),
        ("durable ingest msg/s (64 thr)", "durable_ingest_per_s", true),
        ("durable ack p50 µs", "durable_ack_p50_us", false),
        ("durable ack p99 µs", "durable_ack_p99_us", false),
        ("durable ack p99.9 µs", "durable_ack_p999_us", false),
        ("durable: machine stall ms", "durable_machine_stall_ms", false),
        ("single-writer sync msg/s", "single_writer_sync_per_s", true),
        ("group-commit ratio", "group_commit_ratio", true),
        ("latest50 p50 µs", "latest50_p50_us", false),
        ("latest50 p99 µs", "latest50_p99_us", false),
        ("latest50 p99.9 µs", "latest50_p999_us", false),
        ("latest50 service p99 µs", "latest50_service_p99_us", false),
        ("deep50 p50 µs", "deep50_p50_us", false),
        ("deep50 p99 µs", "deep50_p99_us", false),
        ("deep50 p99.9 µs", "deep50_p999_us", false),
        ("deep50 service p99 µs", "deep50_service_p99_us", false),
        ("bytes/message", "bytes_per_message", false),
        ("write amplification", "write_amplification", false),
        ("recovery ms", "recovery_ms", false),
    ]

    func terminalText() -> String {
        var cols = systems.map(\.name)
        let hasConfab = cols.contains("confab")
        let refs = ["rocksdb", "sqlite"].filter { cols.contains($0) && hasConfab }
        cols += refs.map { "confab/\($0)" }
        let labelWidth = Report.rows.map(\.0.count).max()! + 2
        let colWidth = max(12, cols.map(\.count).max()! + 2)
        var out = ""
        out +=
            "Confab storage benchmark — \(config.quick ? "quick" : "full") run, \(workload.messages.count) messages, "
        out +=
            "\(config.workload.chats) chats, deep offset \(config.workload.deepOffset), seed \(config.workload.seed)\n\n"
        out += "metric".padding(toLength: labelWidth, withPad: " ", startingAt: 0)
        for c in cols { out += c.leftPadded(colWidth) }
        out += "\n" + String(repeating: "-", count: labelWidth + colWidth * cols.count) + "\n"
        for (label, key, _) in Report.rows {
            out += label.padding(toLength: labelWidth, withPad: " ", startingAt: 0)
            for s in systems { out += (s.metrics[key].map(fmt) ?? "-").leftPadded(colWidth) }
            for r in refs {
                out += (ratio(metric("confab", key), metric(r, key)).map { String(format: "%.2f×", $0) } ?? "-")
                    .leftPadded(colWidth)
            }
            out += "\n"
        }
        if let ewa = metric("confab", "engine_write_amplification") {
            out += "\nconfab engine_write_amplification (EngineStats): \(fmt(ewa))\n"
        }
        out += "\nTargets (ratios within this run):\n"
        for t in targets {
            let mark = t.met.map { $0 ? "MET   " : "MISSED" } ?? "n/a   "
            let value = t.value.map { t.unit == "×" ? String(format: "%.2f×", $0) : "\(fmt($0)) \(t.unit)" } ?? "-"
            out +=
                "  [\(mark)] \(t.name.padding(toLength: 42, withPad: " ", startingAt: 0)) \(value.leftPadded(12))  (need \(t.atLeast ? "≥" : "≤") \(t.unit == "×" ? String(format: "%.1f×", t.threshold) : "\(fmt(t.threshold)) \(t.unit)"))\n"
        }
        for s in systems where !s.errors.isEmpty {
            out += "\n\(s.name) errors:\n" + s.errors.map { "  - \($0)\n" }.joined()
        }
        out +=
            "\nread rate \(Int(config.readRatePerSecond))/s open-loop, \(config.readRequests) requests per read kind; "
        out += "wall time \(String(format: "%.1f", wallSeconds)) s\n"
        return out
    }

    func json() throws -> Data {
        var results: [String: Any] = [:]
        for s in systems {
            var entry: [String: Any] = s.metrics
            entry["notes"] = s.notes
            if !s.errors.isEmpty { entry["errors"] = s.errors }
            results[s.name] = entry
        }
        var targetsJSON: [String: Any] = [:]
        for t in targets {
            let key = t.name.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
                .split(separator: "_").joined(separator: "_")
            targetsJSON[key] = [
                "value": t.value.map { $0 as Any } ?? NSNull(),
                "threshold": t.threshold,
                "comparison": t.atLeast ? ">=" : "<=",
                "unit": t.unit == "×" ? "ratio" : "us",
                "met": t.met.map { $0 as Any } ?? NSNull(),
            ]
        }
        let w = config.workload
        let configJSON: [String: Any] = [
            "quick": config.quick,
            "seed": NSNumber(value: w.seed),
            "messages": workload.messages.count,
            "chats": w.chats,
            "zipf_exponent": w.zipfExponent,
            "tail_fraction": w.tailFraction,
            "body_bytes": "log-uniform 20–500; tail fraction uniform 10,000–100,000",
            "deep_offset": w.deepOffset,
            "deep_chat_messages": w.deepChatMessages,
            "deep_jitter": config.deepJitter,
            "page_limit": config.pageLimit,
            "logical_bytes": NSNumber(value: workload.logicalBytes),
            "read_rate_per_s": config.readRatePerSecond,
            "read_requests": config.readRequests,
            "durable_threads": config.writerThreads,
            "durable_seconds": config.durableSeconds,
            "single_sync_seconds": config.singleSyncSeconds,
            "recovery_messages": config.recoveryMessages,
            "cores": ProcessInfo.processInfo.activeProcessorCount,
            "wall_seconds": wallSeconds,
            "nice": nice,
        ]
        let doc: [String: Any] = ["results": results, "targets": targetsJSON, "config": configJSON]
        return try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? " " + self : String(repeating: " ", count: width - count) + self
    }
}
