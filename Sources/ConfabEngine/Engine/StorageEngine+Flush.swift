import Foundation

extension StorageEngine {
    func startBackgroundThreads() {
        threadsDone.enter()
        let flusher = Thread { [self] in
            defer { threadsDone.leave() }
            flushLoop()
        }
        flusher.name = "confab-flush"
        flusher.start()
        threadsDone.enter()
        let compactor = Thread { [self] in
            defer { threadsDone.leave() }
            compactionLoop()
        }
        compactor.name = "confab-compaction"
        compactor.start()
    }

    private func flushLoop() {
        while true {
            let item: FrozenMemtable? = state.withLock {
                while frozen.isEmpty && !closed { stateChanged.wait() }
                return closed ? nil : frozen.first
            }
            guard let item else { return }
            do {
                try flushLock.withLock { try flushOne(item) }
                state.withLock { backgroundError = nil }
            } catch {
                logger.error("flush failed; retrying in 1 s", metadata: ["error": "\(error)"])
                state.withLock {
                    backgroundError = error
                    wakeLocked()
                    stateChanged.wait(untilNanos: BlockingCondition.nowNanos() + 1_000_000_000)
                }
            }
        }
    }

    /// Freezes the active memtable (if it holds anything) and waits until every frozen memtable
    /// is in an SSTable.
    public func flush() throws {
        try writeLock.withLock {
            if state.withLock({ closed }) { throw StorageError(.closed, "the storage engine is closed") }
            if !active.isEmpty { try freezeActiveLocked() }
        }
        if options.backgroundWork {
            try state.withLock {
                while !frozen.isEmpty && !closed {
                    if let e = backgroundError { throw e }
                    stateChanged.wait()
                }
            }
        } else {
            try flushFrozen()
        }
    }

    /// Flushes frozen memtables in order on the calling thread (used when background work is off).
    func flushFrozen() throws {
        try flushLock.withLock {
            while let item = state.withLock({ frozen.first }) {
                try flushOne(item)
            }
        }
    }

    func allocateFileNumber() -> UInt64 {
        state.withLock {
            let n = manifest.nextFileNumber
            manifest.nextFileNumber += 1
            return n
        }
    }

    /// Writes a sorted stream of entries to a new SSTable: temp name, fsync, rename, directory
    /// fsync. Returns nil when the stream was empty.
    func writeTable(
        estimatedPartitions: Int, throttle: ((Int) -> Void)? = nil,
        _ produce: (SSTableWriter) throws -> Void
    ) throws -> SSTableReader? {
        let number = allocateFileNumber()
        let finalPath = joinPath(directory, Self.sstableName(number))
        let tmpPath = finalPath + ".tmp"
        var writerOptions = SSTableWriterOptions()
        writerOptions.blockBytes = options.blockBytes
        writerOptions.bloomBitsPerKey = options.bloomBitsPerKey
        let writer = try SSTableWriter(
            fileSystem: fs, path: tmpPath, options: writerOptions,
            expectedPartitions: max(1, estimatedPartitions))
        let stats: SSTableStatistics
        do {
            try produce(writer)
            stats = try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        if stats.entryCount == 0 {
            try? fs.remove(tmpPath)
            return nil
        }
        try fs.rename(tmpPath, to: finalPath)
        try fs.syncDirectory(directory)
        return try SSTableReader.open(fileSystem: fs, path: finalPath, fileNumber: number, blockCache: blockCache)
    }

    /// Flushes the oldest frozen memtable, records it in the manifest, drops its WAL segments.
    func flushOne(_ item: FrozenMemtable) throws {
        let memtable = item.memtable
        // Writes appended while it was active may still be on their way in (applied after their
        // sync); the SSTable must hold them all, since their WAL segments go away with it.
        memtable.waitForPendingWrites()
        let reader = try writeTable(estimatedPartitions: memtable.entryCount) { writer in
            try memtable.forEachEntry { key, value in try writer.add(key: key, value: value) }
        }
        try manifestLock.withLock {
            var next = state.withLock { manifest }
            if let reader {
                next.tables.append(.init(fileNumber: reader.fileNumber, fileSize: UInt64(reader.fileSize)))
            }
            next.logNumber = max(next.logNumber, item.nextLogNumber)
            try next.store(directory: directory, fileSystem: fs)
            state.withLock {
                manifest.tables = next.tables
                manifest.logNumber = next.logNumber
                if let reader {
                    tables.insert(reader, at: 0)
                    counters.flushBytesWritten += UInt64(reader.fileSize)
                    metrics.flushBytes.increment(by: reader.fileSize)
                }
                frozen.removeFirst()
                counters.flushes += 1
                compactionRequested = true
                wakeLocked()
            }
        }
        metrics.flushes.increment()
        updateGauges()
        try WriteAheadLog.removeSegments(directory: directory, fileSystem: fs, below: item.nextLogNumber)
        if options.cacheFlushedTables, let reader, reader.statistics.uncompressedBytes <= blockCache.capacityBytes / 2 {
            // The table is readable already; a block read meanwhile is simply loaded twice. The
            // flush is done whatever happens here: a block that fails now fails its reads too.
            do {
                try reader.loadIntoCache()
            } catch {
                logger.error("loading a flushed table into the block cache failed", metadata: ["error": "\(error)"])
            }
        }
    }

    func updateGauges() {
        let (count, bytes, mem) = state.withLock {
            (tables.count, tables.reduce(0) { $0 + $1.fileSize }, active.memoryBytes)
        }
        metrics.sstables.record(count)
        metrics.liveBytes.record(bytes)
        metrics.memtableBytes.record(mem)
    }
}
