import Foundation

extension StorageEngine {
    func compactionLoop() {
        while true {
            let stop: Bool = state.withLock {
                while !compactionRequested && !closed {
                    // A real timer, not a stand-in for a condition: every 5 s the planner looks
                    // again (windows age and TTLs expire with no event to announce it).
                    stateChanged.wait(untilNanos: BlockingCondition.nowNanos() + 5_000_000_000)
                    if !closed { compactionRequested = true }
                }
                compactionRequested = false
                return closed
            }
            if stop { return }
            do {
                while try runOneCompaction(planned: nil) {
                    if state.withLock({ closed }) { return }
                }
            } catch {
                if state.withLock({ closed }) { return }
                logger.error("compaction failed; will retry", metadata: ["error": "\(error)"])
                // Back off 1 s before trying again (woken early by close).
                state.withLock { stateChanged.wait(untilNanos: BlockingCondition.nowNanos() + 1_000_000_000) }
            }
        }
    }

    /// Flushes, then merges every SSTable into one and waits (a major compaction).
    public func compact() throws {
        try flush()
        let all = state.withLock { tables.map(\.fileNumber) }
        guard all.count >= 2 || tablesHavePurgeableData() else { return }
        _ = try runOneCompaction(planned: all)
    }

    /// Tombstones, or expiring values (which become tombstones when they expire): a single table
    /// holding any is worth rewriting, to turn expired values into tombstones and purge those
    /// past the grace period.
    private func tablesHavePurgeableData() -> Bool {
        state.withLock {
            tables.contains { $0.statistics.tombstoneCount > 0 || $0.statistics.maxLocalDeletionTime != .min }
        }
    }

    /// Waits until no flush is pending and the compaction strategy has nothing more to do.
    public func waitForBackgroundWork() throws {
        try flush()
        while try runOneCompaction(planned: nil) {}
    }

    /// Runs the compaction `planned` (file numbers) or the strategy's next pick. Returns whether
    /// it compacted anything.
    @discardableResult
    func runOneCompaction(planned: [UInt64]?) throws -> Bool {
        compactionLock.lock()
        defer { compactionLock.unlock() }
        let now = options.clock.nowSeconds()
        let (inputs, others, memtableMin, alone) = state.withLock {
            () -> ([SSTableReader], [SSTableReader], Int64, Bool) in
            let memMin = ([active] + frozen.map(\.memtable)).map(\.minTimestamp).min() ?? .max
            let chosen: Set<UInt64>
            var alone = false
            if let planned {
                chosen = Set(planned)
            } else {
                let planner = CompactionPlanner(options: options.compaction)
                let described = tables.map {
                    CompactionPlanner.Table(
                        fileNumber: $0.fileNumber, size: $0.fileSize, maxTimestamp: $0.statistics.maxTimestamp,
                        minTimestamp: $0.statistics.minTimestamp,
                        maxLocalDeletionTime: $0.statistics.maxLocalDeletionTime,
                        firstPartition: $0.firstPartition, lastPartition: $0.lastPartition)
                }
                if let merge = planner.pick(described) {
                    chosen = Set(merge)
                } else {
                    let context = CompactionPlanner.PurgeContext(
                        now: now, gcGraceSeconds: options.gcGraceSeconds, memtableMinTimestamp: memMin)
                    chosen = Set(planner.tombstoneCompaction(described, context) ?? [])
                    alone = !chosen.isEmpty
                }
            }
            let inputs = tables.filter { chosen.contains($0.fileNumber) }
            let others = tables.filter { !chosen.contains($0.fileNumber) }
            return (inputs, others, memMin, alone)
        }
        guard !inputs.isEmpty, planned != nil || inputs.count >= 2 || alone else { return false }

        let purge = CompactionMerger.Purge(
            now: now, gcGraceSeconds: options.gcGraceSeconds,
            maxPurgeableTimestamp: { prefix in
                var m = memtableMin
                for t in others where t.statistics.minTimestamp < m && t.mayContainPartition(prefix) {
                    m = t.statistics.minTimestamp
                }
                return m
            })
        let merger = CompactionMerger(inputs: inputs.map { $0.makeIterator() }, purge: purge)
        let bytesIn = inputs.reduce(0) { $0 + $1.fileSize }
        let started = DispatchTime.now().uptimeNanoseconds
        let cap = options.compaction.throughputBytesPerSecond
        let output = try writeTable(estimatedPartitions: inputs.reduce(0) { $0 + $1.statistics.partitionCount }) {
            writer in
            var sinceCheck = 0
            try merger.run { key, value in
                try writer.add(key: key, value: value)
                sinceCheck += key.count + value.count
                if sinceCheck >= 1 << 20 {
                    sinceCheck = 0
                    if state.withLock({ closed }) {
                        throw StorageError(.closed, "compaction stopped: the engine is closing")
                    }
                    if cap > 0 {
                        // Pace to the throughput cap so compaction never starves foreground I/O.
                        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                        let due = Double(writer.bytesWritten) / Double(cap)
                        if due > elapsed { Thread.sleep(forTimeInterval: due - elapsed) }
                    }
                }
            }
        }
        let removed = Set(inputs.map(\.fileNumber))
        try manifestLock.withLock {
            var next = state.withLock { manifest }
            next.tables.removeAll { removed.contains($0.fileNumber) }
            if let output {
                next.tables.append(.init(fileNumber: output.fileNumber, fileSize: UInt64(output.fileSize)))
            }
            try next.store(directory: directory, fileSystem: fs)
            state.withLock {
                manifest.tables = next.tables
                tables.removeAll { removed.contains($0.fileNumber) }
                if let output {
                    tables.append(output)
                    tables.sort { $0.fileNumber > $1.fileNumber }
                    counters.compactionBytesWritten += UInt64(output.fileSize)
                }
                counters.compactionBytesRead += UInt64(bytesIn)
                counters.compactions += 1
            }
        }
        // Readers that still hold the old tables keep their open descriptors; unlinking is safe.
        for t in inputs {
            try? fs.remove(t.path)
            blockCache.evict(fileNumber: t.fileNumber)
        }
        try? fs.syncDirectory(directory)
        metrics.compactions.increment()
        metrics.compactionBytesRead.increment(by: bytesIn)
        metrics.compactionBytesWritten.increment(by: output?.fileSize ?? 0)
        updateGauges()
        logger.debug(
            "compacted",
            metadata: ["inputs": "\(inputs.count)", "bytesIn": "\(bytesIn)", "bytesOut": "\(output?.fileSize ?? 0)"])
        return true
    }
}
