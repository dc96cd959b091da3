import Foundation

/// The idle-connection phase's numbers.
struct IdleResult: Sendable {
    var requested = 0
    var targetConnections = 100_000
    var warmupConnections = 0
    var opened = 0
    var failed = 0
    var firstError: String?
    var openSeconds = 0.0
    var rssBefore: UInt64?
    var rssAfter: UInt64?
    var rssAfterClose: UInt64?
    var serverFdsBefore: Int?
    var serverFdsAfter: Int?
    var serverFdsAfterClose: Int?
    var serverAliveWithConnections = true
    /// Set when the server died during the phase: what its log said last.
    var serverExit: String?
    var serverSoftLimitAtStart: Int?
    var serverSoftLimit: Int?
    var serverHardLimit: Int?
    var serverRaisedSoftLimit: Bool?
    var benchSoftLimit = 0
    /// What the kernel said when the bench asked for a descriptor limit above 100,000.
    var fdLimitError: String?

    var bytesPerConnection: Double? {
        guard let b = rssBefore, let a = rssAfter, opened > 0 else { return nil }
        return (Double(a) - Double(b)) / Double(opened)
    }
}

/// `confab-bench chat` results: terminal table, targets, JSON.
struct ChatReport {
    let config: ChatBenchConfig
    var idle = IdleResult()
    var latencyRuns: [ChatRunResult] = []
    var fanoutRuns: [ChatRunResult] = []
    var fanoutExpectedPerMessage = 0
    var fanoutMembersPerServer = [0, 0]
    var crossServer = false
    var crossServerNote = ""
    var serversAlive = true
    var wallSeconds = 0.0

    init(config: ChatBenchConfig) { self.config = config }

    var modeLabel: String {
        crossServer ? "cross-server (send on A, receive on B)" : "SAME-SERVER (send and receive on A)"
    }

    /// The run at the target rate (2,000/s), or the fastest one.
    var targetLatencyRun: ChatRunResult? {
        latencyRuns.first { $0.ratePerSecond == 2_000 } ?? latencyRuns.max { $0.ratePerSecond < $1.ratePerSecond }
    }

    var bestFanout: ChatRunResult? { fanoutRuns.max { $0.deliveriesPerSecond < $1.deliveriesPerSecond } }

    var targets: [(key: String, target: TargetResult)] {
        let t = targetLatencyRun
        // A run that lost messages has no honest p99: mark it missed.
        let p99 = t.map { $0.unreceived == 0 ? $0.latency.p99 / 1000 : .infinity }
        // The slowest rate is the closest to the steady state of one chat (batches of one message).
        let slow = latencyRuns.min { $0.ratePerSecond < $1.ratePerSecond }
        let perSend = slow.flatMap { r in r.ringReadsPerSend.flatMap { reads in r.ringWritesPerSend.map { reads + $0 } }
        }
        return [
            (
                "ring_requests_per_send",
                TargetResult(
                    name:
                        "ring reads + writes per send at \(slow.map { String(format: "%.0f", $0.ratePerSecond) } ?? "?")/s",
                    value: perSend, threshold: 1, atLeast: false, unit: "requests")
            ),
            (
                "latency_p99",
                TargetResult(
                    name:
                        "1:1 p99 at \(t.map { String(format: "%.0f", $0.ratePerSecond) } ?? "?")/s, \(crossServer ? "cross-server" : "SAME-SERVER")",
                    value: p99, threshold: 20, atLeast: false, unit: "ms")
            ),
            (
                "fanout_deliveries_per_s",
                TargetResult(
                    name: "fan-out deliveries/s, 100-member groups", value: bestFanout?.deliveriesPerSecond,
                    threshold: 50_000, atLeast: true, unit: "/s")
            ),
            (
                "idle_connections",
                TargetResult(
                    name: "idle connections held by one server",
                    value: config.skipIdle ? nil : Double(idle.opened + idle.warmupConnections),
                    threshold: 100_000, atLeast: true, unit: "conns")
            ),
            (
                "idle_kib_per_connection",
                TargetResult(
                    name: "memory per idle connection", value: idle.bytesPerConnection.map { $0 / 1024 },
                    threshold: 10, atLeast: false, unit: "KiB")
            ),
        ]
    }

    func terminalText() -> String {
        func f(_ v: Double, _ d: Int = 0) -> String { String(format: "%.\(d)f", v) }
        func ms(_ us: Double) -> String { String(format: "%.2f", us / 1000) }
        var out =
            "\nConfab chat benchmark (\(config.quick ? "quick" : "full"), 3-node RF-3 ring + 2 chat servers, localhost, \(ProcessInfo.processInfo.activeProcessorCount) cores)\n"

        out += "\n1. End-to-end 1:1 latency, open loop, from the scheduled send to receipt — \(modeLabel)\n"
        if !crossServerNote.isEmpty { out += "   note: \(crossServerNote)\n" }
        out +=
            "   \(config.pairs) pairs; WebSocket send on the sender's server, `message` event read at the receiver's device\n"
        let lh = [
            "rate/s", "sent", "received", "lost", "p50 ms", "p99 ms", "p999 ms", "max ms", "ack p99 ms", "errors",
            "ring r+w/send", "CPU s A/B/ring/bench", "stalls n/ms",
        ]
        var rows: [[String]] = [lh]
        for r in latencyRuns {
            rows.append([
                f(r.ratePerSecond), "\(r.messages)", "\(r.delivered)", "\(r.unreceived)", ms(r.latency.p50),
                ms(r.latency.p99),
                ms(r.latency.p999), ms(r.latency.max), ms(r.ack.p99), Self.errorText(r.errors), ringCost(r), cpu(r),
                stalls(r),
            ])
        }
        out += Self.table(rows)

        out +=
            "\n2. Fan-out into \(config.groups) groups of \(config.groupMembers) members (\(fanoutMembersPerServer[0]) on A, \(fanoutMembersPerServer[1]) on B), \(fanoutExpectedPerMessage) devices get each message\n"
        rows = [
            [
                "rate msg/s", "offered/s", "deliveries/s", "w/ drain /s", "delivered", "expected", "p50 ms", "p99 ms",
                "p999 ms", "drain s", "errors", "CPU s A/B/ring/bench", "stalls n/ms",
            ]
        ]
        for r in fanoutRuns {
            rows.append([
                f(r.ratePerSecond), f(r.ratePerSecond * Double(r.expectedPerMessage)), f(r.deliveriesPerSecond),
                f(r.deliveriesPerSecondWithDrain), "\(r.delivered)", "\(r.messages * r.expectedPerMessage)",
                ms(r.latency.p50), ms(r.latency.p99), ms(r.latency.p999), f(r.drainSeconds, 2),
                Self.errorText(r.errors), cpu(r), stalls(r),
            ])
        }
        out += Self.table(rows)
        out +=
            "   (CPU s: CPU seconds used during the run — sending window + drain — by server A, server B, the three ring nodes together, and the bench; the machine has \(ProcessInfo.processInfo.activeProcessorCount) cores)\n"
        out +=
            "   (stalls: times the whole machine stopped for over 2 ms during the run, and their total — see MachineStallProbe in Bench/README.md)\n"

        out += "\n3. Idle WebSocket connections on server A\n"
        if config.skipIdle {
            out += "   skipped (--skip-idle)\n"
        } else {
            let i = idle
            func kib(_ b: UInt64?) -> String { b.map { "\($0 / 1024) KiB" } ?? "?" }
            out +=
                "   opened \(i.opened) of \(i.requested) (+ \(i.warmupConnections) warm-up) in \(f(i.openSeconds, 1)) s, \(i.failed) failed\(i.firstError.map { "; first error: \($0)" } ?? "")\n"
            out +=
                "   server RSS \(kib(i.rssBefore)) → \(kib(i.rssAfter)) (after closing: \(kib(i.rssAfterClose))); descriptors \(i.serverFdsBefore ?? -1) → \(i.serverFdsAfter ?? -1)\n"
            if let exit = i.serverExit {
                out += "   SERVER A DIED: " + exit.replacingOccurrences(of: "\n", with: "\n     ") + "\n"
            }
            out +=
                "   per connection: \(i.bytesPerConnection.map { f($0) + " bytes = " + f($0 / 1024, 2) + " KiB" } ?? "?")\n"
            out +=
                "   descriptor limits: server soft \(i.serverSoftLimit.map(String.init) ?? "?") / hard \(i.serverHardLimit.map(String.init) ?? "?")"
            if let raised = i.serverRaisedSoftLimit {
                out +=
                    raised
                    ? " (started with soft \(i.serverSoftLimitAtStart ?? 0): the server raised it to the hard limit)\n"
                    : " — the server did NOT raise a soft limit of \(i.serverSoftLimitAtStart ?? 0) at startup (restarted with the bench's limits)\n"
            } else {
                out += "\n"
            }
            out +=
                "   100,000 connections do not fit here: \(i.fdLimitError ?? "raising RLIMIT_NOFILE to 100,512 worked (no limit error)")\n"
        }

        out += "\nTargets:\n"
        for (_, t) in targets {
            let lost = targetLatencyRun?.unreceived ?? 0
            let v =
                t.value.map {
                    $0.isInfinite ? "\(lost) msgs lost;" : (t.unit == "ms" || t.unit == "KiB" ? f($0, 2) : f($0))
                } ?? "n/a"
            let unit = t.value?.isInfinite == true ? "no p99" : t.unit
            let mark = t.met.map { $0 ? "MET   " : "MISSED" } ?? "n/a   "
            out +=
                "  [\(mark)] \(t.name.padding(toLength: 46, withPad: " ", startingAt: 0)) \(v.leftPadded(12)) \(unit)  (need \(t.atLeast ? "≥" : "≤") \(t.unit == "ms" || t.unit == "KiB" ? f(t.threshold) : f(t.threshold)) \(t.unit))\n"
        }
        if !serversAlive { out += "\nWARNING: a chat server was not running at the end of the run\n" }
        out += "\nwall \(f(wallSeconds, 1)) s\n"
        return out
    }

    /// "reads + writes" per send, as the chat servers counted them.
    private func ringCost(_ r: ChatRunResult) -> String {
        guard let reads = r.ringReadsPerSend, let writes = r.ringWritesPerSend else { return "?" }
        return String(format: "%.2f + %.2f", reads, writes)
    }

    private func stalls(_ r: ChatRunResult) -> String {
        r.stalls.map { "\($0.count)/" + String(format: "%.0f", $0.totalMs) } ?? "n/a"
    }

    private func cpu(_ r: ChatRunResult) -> String {
        ["server_a", "server_b", "ring", "bench"].map { String(format: "%.1f", r.cpuSeconds[$0] ?? 0) }.joined(
            separator: "/")
    }

    static func errorText(_ errors: [String: Int]) -> String {
        errors.isEmpty ? "0" : errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    static func table(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        let widths = (0..<first.count).map { c in rows.map { $0.count > c ? $0[c].count : 0 }.max() ?? 0 }
        return rows.map { row in
            "   "
                + row.enumerated().map { c, v in String(repeating: " ", count: max(0, widths[c] - v.count)) + v }
                .joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    func json() throws -> Data {
        func run(_ r: ChatRunResult) -> [String: Any] {
            [
                "rate_per_s": r.ratePerSecond, "messages": r.messages, "seconds": r.seconds,
                "expected_per_message": r.expectedPerMessage, "delivered": r.delivered,
                "unreceived_messages": r.unreceived,
                "duplicates": r.duplicates, "acks": r.acks, "errors": r.errors,
                "p50_us": r.latency.p50, "p99_us": r.latency.p99, "p999_us": r.latency.p999, "max_us": r.latency.max,
                "ack_p50_us": r.ack.p50, "ack_p99_us": r.ack.p99, "ack_p999_us": r.ack.p999,
                "deliveries_per_s": r.deliveriesPerSecond,
                "deliveries_per_s_with_drain": r.deliveriesPerSecondWithDrain,
                "offered_deliveries_per_s": r.ratePerSecond * Double(r.expectedPerMessage),
                "drain_seconds": r.drainSeconds, "send_lag_max_ms": r.sendLagMaxMs,
                "receipts_per_100ms": r.bins, "cpu_seconds": r.cpuSeconds,
                "cpu_seconds_per_1000_messages": r.cpuSeconds.mapValues { $0 / Double(max(1, r.messages)) * 1000 },
                "ring_reads_per_send": r.ringReadsPerSend.map { $0 as Any } ?? NSNull(),
                "ring_writes_per_send": r.ringWritesPerSend.map { $0 as Any } ?? NSNull(),
                "machine_stalls": r.stalls.map { $0.json as Any } ?? NSNull(),
            ]
        }
        func opt<T>(_ v: T?) -> Any { v.map { $0 as Any } ?? NSNull() }
        var targetsJSON: [String: Any] = [:]
        for (key, t) in targets {
            targetsJSON[key] =
                [
                    "name": t.name, "value": t.value.map { $0.isInfinite ? NSNull() as Any : $0 as Any } ?? NSNull(),
                    "threshold": t.threshold, "comparison": t.atLeast ? ">=" : "<=", "unit": t.unit, "met": opt(t.met),
                ] as [String: Any]
        }
        let i = idle
        let doc: [String: Any] = [
            "latency": [
                "mode": crossServer ? "cross-server" : "same-server", "note": crossServerNote, "pairs": config.pairs,
                "runs": latencyRuns.map(run),
            ] as [String: Any],
            "fanout": [
                "groups": config.groups, "group_members": config.groupMembers,
                "members_on_a": fanoutMembersPerServer[0],
                "members_on_b": fanoutMembersPerServer[1], "expected_per_message": fanoutExpectedPerMessage,
                "best_deliveries_per_s": opt(bestFanout?.deliveriesPerSecond), "runs": fanoutRuns.map(run),
            ] as [String: Any],
            "idle": config.skipIdle
                ? ["skipped": true] as [String: Any]
                : [
                    "requested": i.requested, "opened": i.opened, "failed": i.failed, "first_error": opt(i.firstError),
                    "warmup_connections": i.warmupConnections, "open_seconds": i.openSeconds,
                    "rss_before_bytes": opt(i.rssBefore), "rss_after_bytes": opt(i.rssAfter),
                    "rss_after_close_bytes": opt(i.rssAfterClose),
                    "bytes_per_connection": opt(i.bytesPerConnection),
                    "kib_per_connection": opt(i.bytesPerConnection.map { $0 / 1024 }),
                    "server_fds_before": opt(i.serverFdsBefore), "server_fds_after": opt(i.serverFdsAfter),
                    "server_fds_after_close": opt(i.serverFdsAfterClose),
                    "server_alive_with_connections": i.serverAliveWithConnections,
                    "server_exit": opt(i.serverExit),
                    "server_soft_limit_at_start": opt(i.serverSoftLimitAtStart),
                    "server_soft_limit": opt(i.serverSoftLimit),
                    "server_hard_limit": opt(i.serverHardLimit),
                    "server_raised_soft_limit": opt(i.serverRaisedSoftLimit),
                    "bench_soft_limit": i.benchSoftLimit, "fd_limit_error": opt(i.fdLimitError),
                    "target_connections": i.targetConnections,
                ] as [String: Any],
            "targets": targetsJSON,
            "servers_alive_at_end": serversAlive,
            "config": [
                "quick": config.quick, "confab": config.confab, "pairs": config.pairs,
                "latency_rates": config.latencyRates,
                "latency_seconds": config.latencySeconds, "warmup_seconds": config.warmupSeconds,
                "fanout_rates": config.fanoutRates, "fanout_seconds": config.fanoutSeconds, "groups": config.groups,
                "group_members": config.groupMembers, "idle_children": config.idleChildren, "mode": config.mode,
                "body_bytes": config.bodyBytes, "password_rounds": config.passwordRounds, "ring_nodes": 3,
                "replication_factor": 3, "node_config": LocalRing.configRecord(config.nodeConfig), "chat_servers": 2,
                "cores": ProcessInfo.processInfo.activeProcessorCount,
                "wall_seconds": wallSeconds,
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
    }
}
