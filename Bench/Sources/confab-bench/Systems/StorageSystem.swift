/// How a store is opened for a phase of the benchmark.
enum Durability: String, Sendable, CaseIterable {
    /// WAL on, no sync per write (bulk ingest and the recovery child).
    case buffered
    /// Each write acknowledged only after fdatasync; concurrent writers may share a sync.
    case groupSync
    /// Each write acknowledged only after its own fdatasync (one writer).
    case singleSync
}

/// The contract every compared store implements. A system is opened on a directory for one
/// phase, written, read, and closed; `write` must be safe from many threads at once.
protocol StorageSystem: AnyObject, Sendable {
    /// Short name used in `--systems`, the table and the JSON ("confab", "rocksdb", ...).
    static var name: String { get }
    /// One line per durability level saying exactly what the store is asked to do.
    static func describe(_ durability: Durability) -> String
    /// Library version string, for the JSON config.
    static var version: String { get }

    init(directory: String, durability: Durability, workload: Workload) throws

    /// Stores one message. Under `.groupSync` / `.singleSync` it returns only once the message is
    /// durable (fdatasync).
    func write(_ message: MessageRecord, scratch: KVScratch) throws
    /// Makes everything written so far visible to reads without forcing a sync (SQLite commits its
    /// open bulk transaction; the others need nothing).
    func commitPending() throws
    /// Makes everything written so far durable on disk: the timed end of bulk ingest.
    func finishIngest() throws
    /// Waits for background flushes and compactions to finish (not timed as ingest).
    func settle() throws
    /// The newest `limit` messages of `chat`, newest first; returns the number of rows.
    func latest(chat: Int64, limit: Int, scratch: KVScratch) throws -> Int
    /// The newest `limit` messages of `chat` with timestamp < `before`, newest first.
    func page(chat: Int64, before: Int64, limit: Int, scratch: KVScratch) throws -> Int
    func close() throws
    /// Metrics the system reports about itself (Confab: its EngineStats), added to the JSON.
    func ownMetrics() -> [String: Double]
}

extension StorageSystem {
    func commitPending() throws {}
    func ownMetrics() -> [String: Double] { [:] }
}

/// A failure of a compared system or of the harness, with the system's own message.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Every system this benchmark knows, in display order.
enum Systems {
    static let all: [any StorageSystem.Type] = [
        ConfabSystem.self, RocksDBSystem.self, LevelDBSystem.self, SQLiteSystem.self,
    ]

    static func named(_ name: String) -> (any StorageSystem.Type)? {
        all.first { $0.name == name }
    }
}
