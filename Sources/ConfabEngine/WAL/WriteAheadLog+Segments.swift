/// Finding, replaying and deleting segment files. Static: replay runs before a log is opened, and
/// deletion is driven by the engine once memtables are flushed.
extension WriteAheadLog {
    /// "<directory>/wal-<id as 20 zero-padded digits>.log".
    static func segmentPath(directory: String, id: UInt64) -> String {
        joinPath(directory, WALRecordFormat.segmentFileName(id))
    }

    /// Ids of the segment files in `directory`, ascending. Other files are ignored; a missing
    /// directory has no segments.
    static func segmentIDs(directory: String, fileSystem: any FileSystem) throws -> [UInt64] {
        guard fileSystem.fileExists(directory) else { return [] }
        return try fileSystem.listDirectory(directory).compactMap(WALRecordFormat.segmentID(fromFileName:)).sorted()
    }

    /// Replays every segment with id >= `fromSegment`, oldest first, calling
    /// `body(payload, segmentID, offset)` for each intact record in log order.
    ///
    /// Damage is judged by where it is:
    /// - In the newest segment of the directory, damage beyond the synced prefix (the largest
    ///   synced length any intact sync marker names) is an unsynced tail: a power loss may have
    ///   persisted any subset of its pages, so it may be followed by intact records. The file is
    ///   truncated at the end of its last intact record before the damage and the cut is reported
    ///   in `truncatedTail`. (Version 1 segments have no markers: there, damage with nothing intact
    ///   after it counts as a torn tail.)
    /// - Anything else (damage inside the synced prefix, any bad record in an older segment — each
    ///   is synced in full before the next is created —, a complete segment header that is wrong or
    ///   names another segment) throws `.corruption` with the file and the offset of the first bad
    ///   byte; `body` has then seen the records before it. Nothing is truncated in that case.
    ///
    /// An empty (0-byte) segment file is a segment whose creation was interrupted before its
    /// header: it holds nothing and is skipped wherever it is.
    static func replay(
        directory: String, fileSystem: any FileSystem, fromSegment: UInt64,
        _ body: ([UInt8], UInt64, Int) throws -> Void
    ) throws -> WALReplayReport {
        let ids = try segmentIDs(directory: directory, fileSystem: fileSystem)
        var report = WALReplayReport()
        guard let newest = ids.last else { return report }
        for id in ids where id >= fromSegment {
            let path = segmentPath(directory: directory, id: id)
            let reader = try WALSegmentReader(path: path, fileSystem: fileSystem, expectedSegmentID: id)
            defer { reader.close() }
            report.segments += 1
            while let record = try reader.next() {
                try body(record.payload, id, record.offset)
                report.records += 1
            }
            // Segment header, records and sync markers up to the end or the first bad byte.
            report.bytes += reader.position
            if let unused = reader.preallocatedFrom {
                // Space the log reserved and never wrote (it was not closed cleanly): not a loss,
                // not reported; cut so the segment holds only its records.
                reader.close()
                if id == newest { try fileSystem.truncate(path, to: unused) }
                continue
            }
            guard let bad = reader.badRecord else { continue }
            if id == newest && bad.looksLikeTornTail {
                let dropped = reader.fileSize - bad.offset
                reader.close()
                try fileSystem.truncate(path, to: bad.offset)
                report.truncatedTail = .init(
                    path: path, offset: bad.offset, bytesDropped: dropped, reason: bad.reason,
                    syncedThrough: bad.syncedThrough, intactRecordAfter: bad.validRecordFollowsAt)
                continue
            }
            var message = "WAL segment \(id) is corrupt: \(bad.reason)"
            if let synced = bad.syncedThrough, synced > bad.offset, !bad.alwaysCorruption {
                message +=
                    "; it lies inside the synced prefix (a sync marker says the segment was fdatasynced through offset \(synced)), so acknowledged records were damaged on disk"
            } else if let follows = bad.validRecordFollowsAt {
                message += "; an intact record follows at offset \(follows), so this is not a torn tail"
            } else if id != newest {
                message += "; it is not the newest segment (\(newest)), so this is not a torn tail"
            }
            message +=
                ". The log is not replayed past this point; restore the node from replicas or move the file aside to accept losing the records after it"
            throw StorageError.corruption(message, path: path, offset: bad.offset)
        }
        return report
    }

    /// Deletes every segment with id < `id` (their records are all in SSTables), then fsyncs the
    /// directory so the deletions are durable.
    static func removeSegments(directory: String, fileSystem: any FileSystem, below id: UInt64) throws {
        let doomed = try segmentIDs(directory: directory, fileSystem: fileSystem).filter { $0 < id }
        guard !doomed.isEmpty else { return }
        for segment in doomed {
            try fileSystem.remove(segmentPath(directory: directory, id: segment))
        }
        try fileSystem.syncDirectory(directory)
    }
}
