import Metrics

/// The engine's swift-metrics instruments. With no metrics backend bootstrapped they cost nothing;
/// the node bootstraps a Prometheus backend and exposes them (names and meanings in
/// docs/operations.md; the WAL's sync latency and the block cache's hit/miss counters live with
/// their owners, `WriteAheadLog` and `BlockCache`).
struct EngineMetrics: Sendable {
    let writes = Counter(label: "confab_engine_writes_total")
    let writeBytes = Counter(label: "confab_engine_write_bytes_total")
    let reads = Counter(label: "confab_engine_reads_total")
    let flushes = Counter(label: "confab_engine_flushes_total")
    let flushBytes = Counter(label: "confab_engine_flush_bytes_total")
    let compactions = Counter(label: "confab_engine_compactions_total")
    let compactionBytesWritten = Counter(label: "confab_engine_compaction_bytes_written_total")
    let compactionBytesRead = Counter(label: "confab_engine_compaction_bytes_read_total")
    let stalls = Counter(label: "confab_engine_write_stalls_total")
    let stallTime = Timer(label: "confab_engine_write_stall_duration_seconds")
    let sstables = Gauge(label: "confab_engine_sstables")
    let liveBytes = Gauge(label: "confab_engine_sstable_bytes")
    let memtableBytes = Gauge(label: "confab_engine_memtable_bytes")
    let tombstonesScanned = Counter(label: "confab_engine_read_tombstones_scanned_total")
}
