import Foundation
import Logging

extension StorageEngine {
    /// Opens (or creates) the store in `directory` and recovers it: loads the manifest, removes
    /// files a crash left half-written, opens the live SSTables and replays the WAL into memtables.
    ///
    /// Recovery stops at the first bad WAL record: an unsynced tail of the last segment (beyond
    /// its last sync marker, so never acknowledged in batch or group mode) is cut off with a log
    /// line; damage inside the synced prefix or in an older segment is reported as `.corruption`
    /// with the file and offset, and nothing is opened.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws -> StorageEngine {
        let fs = options.fileSystem
        try fs.createDirectoryDurably(directory)
        let lock = try DirectoryLock(directory: directory)
        do {
            return try recover(directory: directory, options: options, lock: lock)
        } catch {
            lock.release()
            throw error
        }
    }

    private static func recover(directory: String, options: EngineOptions, lock: DirectoryLock) throws -> StorageEngine
    {
        let fs = options.fileSystem
        let names = try fs.listDirectory(directory)
        let sstNumbers = Set(names.compactMap(sstableNumber))
        var manifest: Manifest
        if let m = try Manifest.load(directory: directory, fileSystem: fs) {
            manifest = m
        } else {
            guard sstNumbers.isEmpty else {
                throw StorageError(
                    .corruption,
                    "MANIFEST is missing but \(sstNumbers.count) SSTable files are present; restore it from a backup or move the files away",
                    path: joinPath(directory, Manifest.fileName))
            }
            // A new store: write an empty manifest before anything else, so a crash in the first
            // flush finds the old (empty) manifest plus an orphan table, never "tables but no
            // manifest".
            manifest = Manifest()
            try manifest.store(directory: directory, fileSystem: fs)
        }

        // Leftovers of a flush or compaction that crashed before its manifest edit. Listed again:
        // storing a new store's first manifest just replaced any MANIFEST.tmp a crash left, so
        // the first listing can name a file that is gone (a kill during a new store's first
        // manifest write made the next open fail with "remove failed").
        let live = Set(manifest.tables.map(\.fileNumber))
        for name in try fs.listDirectory(directory) {
            if name.hasSuffix(".tmp") || (sstableNumber(name).map { !live.contains($0) } ?? false) {
                try fs.remove(joinPath(directory, name))
            }
        }
        let blockCache = BlockCache(capacityBytes: options.blockCacheBytes)
        var tables: [SSTableReader] = []
        for entry in manifest.tables {
            let path = joinPath(directory, sstableName(entry.fileNumber))
            guard fs.fileExists(path) else {
                throw StorageError(
                    .corruption, "SSTable \(sstableName(entry.fileNumber)) listed in the manifest is missing",
                    path: path)
            }
            let size = try fs.fileSize(path)
            guard UInt64(size) == entry.fileSize else {
                throw StorageError(
                    .corruption, "SSTable is \(size) bytes but the manifest recorded \(entry.fileSize)", path: path)
            }
            tables.append(
                try SSTableReader.open(fileSystem: fs, path: path, fileNumber: entry.fileNumber, blockCache: blockCache)
            )
            manifest.nextFileNumber = max(manifest.nextFileNumber, entry.fileNumber + 1)
        }
        tables.sort { $0.fileNumber > $1.fileNumber }

        // WAL replay into memtables; each full one becomes a frozen memtable awaiting flush.
        let segments = try WriteAheadLog.segmentIDs(directory: directory, fileSystem: fs)
        try WriteAheadLog.removeSegments(directory: directory, fileSystem: fs, below: manifest.logNumber)
        let walFirst = max(segments.max() ?? 0, manifest.logNumber) + 1
        var replayed: [FrozenMemtable] = []
        var current = Memtable(id: 1)
        var memtableCount: UInt64 = 1
        let report = try WriteAheadLog.replay(directory: directory, fileSystem: fs, fromSegment: manifest.logNumber) {
            payload, segment, offset in
            let mutation: Mutation
            do {
                mutation = try Mutation.decode(payload)
            } catch var e as StorageError {
                e.message = "WAL record at offset \(offset) passed its checksum but does not decode: \(e.message)"
                e.path = WriteAheadLog.segmentPath(directory: directory, id: segment)
                e.offset = offset
                throw e
            }
            if current.memoryBytes >= options.memtableBytes {
                replayed.append(FrozenMemtable(memtable: current, nextLogNumber: segment))
                memtableCount += 1
                current = Memtable(id: memtableCount)
            }
            current.apply(mutation)
        }
        if let tail = report.truncatedTail {
            // Never acknowledged in batch or group mode (it lies beyond the last sync), but an
            // operator should still see that bytes were dropped.
            Logger(label: "confab.engine").warning(
                "dropped the unsynced tail of the write-ahead log",
                metadata: [
                    "path": "\(tail.path)", "offset": "\(tail.offset)", "bytesDropped": "\(tail.bytesDropped)",
                    "reason": "\(tail.reason)",
                    "syncedThrough": "\(tail.syncedThrough.map(String.init) ?? "unknown (version 1 segment)")",
                    "intactRecordAfterCut": "\(tail.intactRecordAfter.map(String.init) ?? "none")",
                ])
        }
        if !current.isEmpty {
            replayed.append(FrozenMemtable(memtable: current, nextLogNumber: walFirst))
        }
        let engine = try StorageEngine(
            directory: directory, options: options, lock: lock, manifest: manifest, tables: tables,
            replayed: replayed, walFirstSegment: walFirst, blockCache: blockCache)
        if options.backgroundWork {
            engine.startBackgroundThreads()
        } else if !replayed.isEmpty {
            try engine.flushFrozen()
        }
        return engine
    }
}
