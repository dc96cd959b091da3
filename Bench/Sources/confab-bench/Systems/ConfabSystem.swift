import ConfabChat
import ConfabEngine

/// Confab's `StorageEngine` with the chat table's own mutation and query helpers.
final class ConfabSystem: StorageSystem, @unchecked Sendable {
    static let name = "confab"
    static let version = "main (path dependency)"

    static func describe(_ durability: Durability) -> String {
        switch durability {
        case .buffered: return "SyncMode.periodic(100 ms): WAL written per write, fdatasync every 100 ms"
        case .groupSync: return "SyncMode.group: ack after the shared fdatasync that covers the write"
        case .singleSync: return "SyncMode.batch: ack after fdatasync of each write"
        }
    }

    private let engine: StorageEngine
    private let workload: Workload

    init(directory: String, durability: Durability, workload: Workload) throws {
        var options = EngineOptions()
        switch durability {
        case .buffered: options.syncMode = .periodic(milliseconds: 100)
        case .groupSync: options.syncMode = .group
        case .singleSync: options.syncMode = .batch
        }
        self.workload = workload
        engine = try StorageEngine.open(directory: directory, options: options)
    }

    func write(_ m: MessageRecord, scratch: KVScratch) throws {
        let body = String(
            decoding: UnsafeBufferPointer(
                rebasing: workload.corpus[Int(m.bodyOffset)..<Int(m.bodyOffset + m.bodyLength)]),
            as: UTF8.self)
        try engine.write(
            PostedMessages.mutation(
                chatId: m.chatId, timestamp: m.timestamp,
                messageId: MessageCodec.idString(m.messageId),
                sender: MessageCodec.senderString(m.sender), body: body,
                writeTime: m.timestamp))
    }

    /// The memtable is flushed to an SSTable (written and synced), so nothing depends on the WAL.
    func finishIngest() throws { try engine.flush() }

    func settle() throws { try engine.waitForBackgroundWork() }

    func latest(chat: Int64, limit: Int, scratch: KVScratch) throws -> Int {
        try visit(PostedMessages.latest(chatId: chat, limit: limit), scratch)
    }

    func page(chat: Int64, before: Int64, limit: Int, scratch: KVScratch) throws -> Int {
        try visit(PostedMessages.latest(chatId: chat, before: before, limit: limit), scratch)
    }

    /// Rows are read in place (`StorageEngine.read(_:visit:)`), as the other systems' cursors hand
    /// out pointers into their pages; every live cell's value is touched.
    private func visit(_ query: SliceQuery, _ scratch: KVScratch) throws -> Int {
        try engine.read(query) { row in
            row.forEachLiveCell { cell in
                if let v = cell.value { scratch.touch(v.baseAddress, v.count) }
            }
        }.rowCount
    }

    func close() throws { try engine.close() }

    func ownMetrics() -> [String: Double] {
        let s = engine.stats
        return [
            "engine_write_amplification": s.writeAmplification,
            "engine_user_bytes": Double(s.userBytesWritten),
            "engine_wal_bytes": Double(s.walBytesWritten),
            "engine_flush_bytes": Double(s.flushBytesWritten),
            "engine_compaction_bytes": Double(s.compactionBytesWritten),
            "engine_sstables": Double(s.sstableCount),
            "engine_stall_ms": Double(s.stallMicros) / 1000,
        ]
    }
}
