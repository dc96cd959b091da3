import Foundation

extension StorageEngine {
    /// An SSTable taken out of the read path because its bytes failed verification.
    public struct QuarantinedTable: Hashable, Sendable, CustomStringConvertible {
        public var fileNumber: UInt64
        /// Where the file lies now, under `quarantine/` in the engine directory.
        public var path: String
        /// What verification found (file and offset of the bad block).
        public var reason: String

        public var description: String { "\(path): \(reason)" }
    }

    /// The subdirectory of the engine directory that holds quarantined SSTables.
    public static let quarantineDirectoryName = "quarantine"

    /// Verifies every live SSTable and moves each one that fails out of the read path
    /// (Cassandra's disk_failure_policy `best_effort` plus `nodetool scrub`): one bad block must
    /// not fail every read of its partitions and every repair of its table for good. The rows it
    /// held are then simply missing on this replica, like writes it never received, and read
    /// repair or `confab repair` restores them from the other replicas.
    ///
    /// Durable and crash-safe: the manifest without the table is stored first (fsynced, renamed),
    /// then the file is renamed into `quarantine/` and both directories are fsynced. A crash in
    /// between leaves an SSTable the manifest does not list, which recovery deletes as a
    /// half-finished flush's leftover: the table is out of the read path either way, only the
    /// evidence is lost. Renaming first instead could leave a manifest naming a missing file,
    /// which refuses to open.
    ///
    /// Holds the compaction lock, so no compaction is reading the tables meanwhile. Blocking
    /// (reads every block of every table): call it on a thread pool. Returns what it moved.
    public func quarantineCorruptTables() throws -> [QuarantinedTable] {
        compactionLock.lock()
        defer { compactionLock.unlock() }
        let candidates = state.withLock { tables }
        var bad: [UInt64: (reader: SSTableReader, reason: String)] = [:]
        for table in candidates {
            do {
                _ = try table.verify()
            } catch let error as StorageError where error.code == .corruption {
                bad[table.fileNumber] = (table, error.description)
            }
        }
        guard !bad.isEmpty else { return [] }
        let fs = options.fileSystem
        let quarantine = joinPath(directory, Self.quarantineDirectoryName)
        try fs.createDirectoryDurably(quarantine)
        try manifestLock.withLock {
            var next = state.withLock { manifest }
            next.tables.removeAll { bad[$0.fileNumber] != nil }
            try next.store(directory: directory, fileSystem: fs)
            state.withLock {
                manifest.tables = next.tables
                tables.removeAll { bad[$0.fileNumber] != nil }
            }
        }
        var moved: [QuarantinedTable] = []
        for (number, entry) in bad.sorted(by: { $0.key < $1.key }) {
            let target = joinPath(quarantine, (entry.reader.path as NSString).lastPathComponent)
            try fs.rename(entry.reader.path, to: target)
            blockCache.evict(fileNumber: number)
            moved.append(QuarantinedTable(fileNumber: number, path: target, reason: entry.reason))
            logger.error(
                "SSTable quarantined: it failed verification and was moved out of the read path; its rows are missing here until read repair or `confab repair` restores them from other replicas",
                metadata: ["file": "\(target)", "reason": "\(entry.reason)"])
        }
        try fs.syncDirectory(quarantine)
        try fs.syncDirectory(directory)
        updateGauges()
        return moved
    }

    /// SSTables in `quarantine/` (for status): left by this or an earlier run, until an operator
    /// removes them.
    public var quarantinedTableNames: [String] {
        let quarantine = joinPath(directory, Self.quarantineDirectoryName)
        guard options.fileSystem.fileExists(quarantine) else { return [] }
        return ((try? options.fileSystem.listDirectory(quarantine)) ?? []).filter { $0.hasSuffix(".db") }.sorted()
    }
}
