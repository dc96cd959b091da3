import CSQLite3
import Foundation

/// SQLite 3.40 (Debian libsqlite3-dev): a clustered B-tree table keyed (chat, ts, id), WAL
/// journal, 128 MiB page cache.
final class SQLiteSystem: StorageSystem, @unchecked Sendable {
    static let name = "sqlite"
    static var version: String { String(cString: sqlite3_libversion()) + " (Debian libsqlite3-dev)" }

    static func describe(_ durability: Durability) -> String {
        switch durability {
        case .buffered: return "journal_mode=WAL, synchronous=NORMAL (WAL not synced at commit), 1,000-row transactions"
        case .groupSync, .singleSync:
            return
                "journal_mode=WAL, synchronous=FULL (WAL fsynced at each commit), one row per transaction, writers serialized by a mutex"
        }
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS messages(chat INTEGER, ts INTEGER, id TEXT, sender TEXT, body TEXT,
                                            PRIMARY KEY(chat, ts, id)) WITHOUT ROWID
        """
    /// Bulk ingest commits every this many rows.
    static let rowsPerTransaction = 1_000

    private let db: OpaquePointer
    private let insert: OpaquePointer
    private let latestQuery: OpaquePointer
    private let pageQuery: OpaquePointer
    private let durability: Durability
    private let workload: Workload
    private let lock = NSLock()
    private var rowsInTransaction = 0

    init(directory: String, durability: Durability, workload: Workload) throws {
        self.durability = durability
        self.workload = workload
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(
            directory + "/messages.db", &handle,
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else { throw BenchError("sqlite open: rc \(rc)") }
        db = handle
        let sync = durability == .buffered ? "NORMAL" : "FULL"
        for sql in [
            "PRAGMA journal_mode=WAL", "PRAGMA synchronous=\(sync)", "PRAGMA cache_size=-131072",
            SQLiteSystem.schema,
        ] {
            try SQLiteSystem.exec(handle, sql)
        }
        insert = try SQLiteSystem.prepare(
            handle, "INSERT OR REPLACE INTO messages(chat, ts, id, sender, body) VALUES (?, ?, ?, ?, ?)")
        latestQuery = try SQLiteSystem.prepare(
            handle, "SELECT ts, id, sender, body FROM messages WHERE chat = ? ORDER BY ts DESC, id DESC LIMIT ?")
        pageQuery = try SQLiteSystem.prepare(
            handle,
            "SELECT ts, id, sender, body FROM messages WHERE chat = ? AND ts < ? ORDER BY ts DESC, id DESC LIMIT ?")
    }

    static func exec(_ db: OpaquePointer, _ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>? = nil
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? "rc \(rc)"
            sqlite3_free(err)
            throw BenchError("sqlite \(sql.prefix(40)): \(message)")
        }
    }

    static func prepare(_ db: OpaquePointer, _ sql: String) throws -> OpaquePointer {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else {
            throw BenchError("sqlite prepare: \(String(cString: sqlite3_errmsg(db)))")
        }
        return stmt
    }

    func write(_ m: MessageRecord, scratch: KVScratch) throws {
        _ = scratch.encode(m, corpus: workload.corpus)
        lock.lock()
        defer { lock.unlock() }
        if durability == .buffered, rowsInTransaction == 0 { try SQLiteSystem.exec(db, "BEGIN") }
        sqlite3_bind_int64(insert, 1, m.chatId)
        sqlite3_bind_int64(insert, 2, m.timestamp)
        // SQLITE_STATIC (nil destructor): the bytes live in `scratch` until the step below.
        (scratch.key + 16).withMemoryRebound(to: CChar.self, capacity: Workload.idBytes) {
            _ = sqlite3_bind_text(insert, 3, $0, Int32(Workload.idBytes), nil)
        }
        (scratch.value + 1).withMemoryRebound(to: CChar.self, capacity: Workload.senderBytes) {
            _ = sqlite3_bind_text(insert, 4, $0, Int32(Workload.senderBytes), nil)
        }
        (scratch.value + 1 + Workload.senderBytes).withMemoryRebound(to: CChar.self, capacity: Int(m.bodyLength)) {
            _ = sqlite3_bind_text(insert, 5, $0, Int32(m.bodyLength), nil)
        }
        let rc = sqlite3_step(insert)
        sqlite3_reset(insert)
        guard rc == SQLITE_DONE else { throw BenchError("sqlite insert: \(String(cString: sqlite3_errmsg(db)))") }
        if durability == .buffered {
            rowsInTransaction += 1
            if rowsInTransaction == SQLiteSystem.rowsPerTransaction {
                try SQLiteSystem.exec(db, "COMMIT")
                rowsInTransaction = 0
            }
        }
    }

    func commitPending() throws {
        lock.lock()
        defer { lock.unlock() }
        if rowsInTransaction > 0 {
            try SQLiteSystem.exec(db, "COMMIT")
            rowsInTransaction = 0
        }
    }

    /// Commits the open transaction and checkpoints the WAL into the database (the checkpoint
    /// fsyncs the WAL and the database file).
    func finishIngest() throws {
        try commitPending()
        try SQLiteSystem.exec(db, "PRAGMA wal_checkpoint(TRUNCATE)")
    }

    func settle() throws {}

    func latest(chat: Int64, limit: Int, scratch: KVScratch) throws -> Int {
        sqlite3_bind_int64(latestQuery, 1, chat)
        sqlite3_bind_int64(latestQuery, 2, Int64(limit))
        return try drain(latestQuery, scratch)
    }

    func page(chat: Int64, before: Int64, limit: Int, scratch: KVScratch) throws -> Int {
        sqlite3_bind_int64(pageQuery, 1, chat)
        sqlite3_bind_int64(pageQuery, 2, before)
        sqlite3_bind_int64(pageQuery, 3, Int64(limit))
        return try drain(pageQuery, scratch)
    }

    private func drain(_ stmt: OpaquePointer, _ scratch: KVScratch) throws -> Int {
        defer { sqlite3_reset(stmt) }
        var rows = 0
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw BenchError("sqlite read: \(String(cString: sqlite3_errmsg(db)))") }
            for col in Int32(1)...3 {
                scratch.touch(sqlite3_column_blob(stmt, col), Int(sqlite3_column_bytes(stmt, col)))
            }
            rows += 1
        }
        return rows
    }

    func close() throws {
        try commitPending()
        for stmt in [insert, latestQuery, pageQuery] { sqlite3_finalize(stmt) }
        sqlite3_close(db)
    }
}
