import Foundation
import NIOPosix

/// Where a ring phase's write time went, from the nodes' own /metrics read before and after it
/// (summed over the ring's nodes): the open-loop p99 alone cannot tell a slow disk from a busy
/// machine, and these can. At half the peak a node syncs smaller groups than at the peak, so each
/// write costs it more CPU; writes per sync shows it.
struct RingPhaseBreakdown: Sendable {
    /// Writes the ring coordinated in the phase and their mean time on the coordinator, in ms.
    var coordinatedWrites = 0.0
    var coordinatorMeanMs = 0.0
    /// Replica writes the nodes served for other coordinators (RF > 1) and their mean, in ms.
    var replicaWrites = 0.0
    var replicaMeanMs = 0.0
    /// The commit log's fdatasyncs, their mean, and engine writes per sync.
    var syncs = 0.0
    var syncMeanMs = 0.0
    var writesPerSync = 0.0
    /// fdatasyncs that took over 50 ms (the histogram's buckets): one such stall holds every
    /// write of its group and the queue behind it, and shows in the open-loop p99 as a jump the
    /// mean hides.
    var slowSyncs = 0.0
    /// Writes that waited for memtable room (a flush behind) and their total wait, in ms.
    var stalls = 0.0
    var stallTotalMs = 0.0
    /// The nodes' own CPU in the phase (`process_cpu_seconds_total`, user + system), and that per
    /// coordinated write: at half the peak a write costs the nodes more than at the peak, and
    /// this says how much more without a profiler. Nil when a node did not export it.
    var cpuSeconds: Double?
    var cpuMicrosPerWrite: Double?

    init(before: [[String: Double]], after: [[String: Double]]) {
        func delta(_ key: String) -> Double {
            zip(before, after).reduce(0) { $0 + ($1.1[key] ?? 0) - ($1.0[key] ?? 0) }
        }
        func mean(_ sum: String, _ count: String) -> (count: Double, ms: Double) {
            let n = delta(count)
            return (n, n > 0 ? delta(sum) / n * 1000 : 0)
        }
        let coordinator = mean(
            #"confab_coordinator_request_duration_seconds_sum{op="write",consistency="QUORUM"}"#,
            #"confab_coordinator_request_duration_seconds_count{op="write",consistency="QUORUM"}"#)
        let replica = mean(
            #"confab_node_request_duration_seconds_sum{type="replicawrite"}"#,
            #"confab_node_request_duration_seconds_count{type="replicawrite"}"#)
        let sync = mean("confab_engine_wal_sync_duration_seconds_sum", "confab_engine_wal_sync_duration_seconds_count")
        (coordinatedWrites, coordinatorMeanMs) = coordinator
        (replicaWrites, replicaMeanMs) = replica
        (syncs, syncMeanMs) = sync
        slowSyncs = max(0, sync.count - delta(#"confab_engine_wal_sync_duration_seconds_bucket{le="0.05"}"#))
        stalls = delta("confab_engine_write_stalls_total")
        stallTotalMs = delta("confab_engine_write_stall_duration_seconds_sum") * 1000
        writesPerSync = sync.count > 0 ? delta("confab_engine_writes_total") / sync.count : 0
        let cpuKey = "process_cpu_seconds_total"
        if !before.isEmpty, zip(before, after).allSatisfy({ $0.0[cpuKey] != nil && $0.1[cpuKey] != nil }) {
            let cpu = delta(cpuKey)
            cpuSeconds = cpu
            cpuMicrosPerWrite = coordinatedWrites > 0 ? cpu / coordinatedWrites * 1e6 : nil
        }
    }

    var json: [String: Any] {
        var d: [String: Any] = [
            "coordinated_writes": coordinatedWrites, "coordinator_mean_ms": coordinatorMeanMs,
            "replica_writes": replicaWrites, "replica_write_mean_ms": replicaMeanMs,
            "wal_syncs": syncs, "wal_sync_mean_ms": syncMeanMs, "writes_per_sync": writesPerSync,
            "wal_syncs_over_50ms": slowSyncs,
            "write_stalls": stalls, "write_stall_total_ms": stallTotalMs,
        ]
        if let cpuSeconds { d["cpu_seconds"] = cpuSeconds }
        if let cpuMicrosPerWrite { d["cpu_us_per_write"] = cpuMicrosPerWrite }
        return d
    }
}

/// Reads every node's /metrics (their operations ports from ring.json).
struct RingMetricsScraper: Sendable {
    let endpoints: [(host: String, port: Int)]

    /// One parsed exposition per node; empty when a node could not be read (the breakdown is then
    /// left out rather than wrong).
    func scrape() -> [[String: Double]] {
        let endpoints = self.endpoints
        let scraped = try? blockOn {
            var out: [[String: Double]] = []
            for (host, port) in endpoints {
                let connection = try await ChatHTTPConnection.connect(
                    host: host, port: port, group: MultiThreadedEventLoopGroup.singleton)
                let text = try await connection.request(.GET, "/metrics").text
                await connection.close()
                out.append(PrometheusText.series(text))
            }
            return out
        }
        return scraped ?? []
    }
}
