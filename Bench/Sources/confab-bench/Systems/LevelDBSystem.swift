import CLevelDB
import Foundation

/// LevelDB 1.23 (Debian libleveldb-dev) through its C API: 64 MiB write buffer, 128 MiB LRU
/// block cache, its default Snappy compression.
final class LevelDBSystem: StorageSystem, @unchecked Sendable {
    static let name = "leveldb"
    static var version: String {
        "\(leveldb_major_version()).\(leveldb_minor_version()) (Debian libleveldb-dev, C API)"
    }

    static func describe(_ durability: Durability) -> String {
        switch durability {
        case .buffered: return "log on, WriteOptions.sync=false (no fsync per write)"
        case .groupSync, .singleSync:
            return
                "log on, WriteOptions.sync=true (fsync before ack; queued writers are merged into one log write + sync)"
        }
    }

    private let db: OpaquePointer
    private let options: OpaquePointer
    private let cache: OpaquePointer
    private let writeOptions: OpaquePointer
    private let syncWriteOptions: OpaquePointer
    private let readOptions: OpaquePointer
    private let workload: Workload

    init(directory: String, durability: Durability, workload: Workload) throws {
        self.workload = workload
        options = leveldb_options_create()
        leveldb_options_set_create_if_missing(options, 1)
        leveldb_options_set_write_buffer_size(options, 64 << 20)
        cache = leveldb_cache_create_lru(128 << 20)
        leveldb_options_set_cache(options, cache)
        var err: UnsafeMutablePointer<CChar>? = nil
        let handle = leveldb_open(options, directory, &err)
        try LevelDBSystem.check(err, "open")
        guard let handle else { throw BenchError("leveldb: open returned no handle") }
        db = handle
        writeOptions = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(writeOptions, durability == .buffered ? 0 : 1)
        syncWriteOptions = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(syncWriteOptions, 1)
        readOptions = leveldb_readoptions_create()
    }

    static func check(_ err: UnsafeMutablePointer<CChar>?, _ what: String) throws {
        guard let err else { return }
        let message = String(cString: err)
        leveldb_free(err)
        throw BenchError("leveldb \(what): \(message)")
    }

    func write(_ m: MessageRecord, scratch: KVScratch) throws {
        let n = scratch.encode(m, corpus: workload.corpus)
        var err: UnsafeMutablePointer<CChar>? = nil
        scratch.key.withMemoryRebound(to: CChar.self, capacity: Workload.keyBytes) { k in
            scratch.value.withMemoryRebound(to: CChar.self, capacity: n) { v in
                leveldb_put(db, writeOptions, k, Workload.keyBytes, v, n, &err)
            }
        }
        try LevelDBSystem.check(err, "put")
    }

    /// LevelDB's C API has no memtable flush; an empty synced batch fsyncs the log, which makes
    /// every earlier write durable.
    func finishIngest() throws {
        let batch = leveldb_writebatch_create()
        defer { leveldb_writebatch_destroy(batch) }
        var err: UnsafeMutablePointer<CChar>? = nil
        leveldb_write(db, syncWriteOptions, batch, &err)
        try LevelDBSystem.check(err, "sync")
    }

    /// LevelDB exposes no "compaction pending" flag: wait until its stats stop changing and the
    /// process makes no write syscalls for 0.5 s.
    func settle() throws {
        var last = ""
        var stableSince = Date()
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline {
            let now = stats()
            if now != last {
                last = now
                stableSince = Date()
            }
            if Date().timeIntervalSince(stableSince) > 0.5 { break }
            usleep(50_000)
        }
        ProcessIO.waitForWriteQuiet(quietMillis: 500, maxSeconds: 120)
    }

    private func stats() -> String {
        guard let p = leveldb_property_value(db, "leveldb.stats") else { return "" }
        defer { leveldb_free(p) }
        return String(cString: p)
    }

    func latest(chat: Int64, limit: Int, scratch: KVScratch) throws -> Int {
        MessageCodec.writeBE64(UInt64(bitPattern: chat) &+ 1, to: scratch.key)
        return scan(chat: chat, seekLength: 8, limit: limit, scratch: scratch)
    }

    func page(chat: Int64, before: Int64, limit: Int, scratch: KVScratch) throws -> Int {
        MessageCodec.writeBE64(UInt64(bitPattern: chat), to: scratch.key)
        MessageCodec.writeBE64(UInt64(bitPattern: before), to: scratch.key + 8)
        return scan(chat: chat, seekLength: 16, limit: limit, scratch: scratch)
    }

    private func scan(chat: Int64, seekLength: Int, limit: Int, scratch: KVScratch) -> Int {
        let it = leveldb_create_iterator(db, readOptions)
        defer { leveldb_iter_destroy(it) }
        scratch.key.withMemoryRebound(to: CChar.self, capacity: seekLength) { leveldb_iter_seek(it, $0, seekLength) }
        if leveldb_iter_valid(it) != 0 { leveldb_iter_prev(it) } else { leveldb_iter_seek_to_last(it) }
        var prefix = [UInt8](repeating: 0, count: 8)
        prefix.withUnsafeMutableBufferPointer { MessageCodec.writeBE64(UInt64(bitPattern: chat), to: $0.baseAddress!) }
        var rows = 0
        while rows < limit, leveldb_iter_valid(it) != 0 {
            var klen = 0
            guard let k = leveldb_iter_key(it, &klen), klen >= 8, memcmp(k, prefix, 8) == 0 else { break }
            var vlen = 0
            let v = leveldb_iter_value(it, &vlen)
            scratch.touch(UnsafeRawPointer(v), vlen)
            rows += 1
            leveldb_iter_prev(it)
        }
        return rows
    }

    func close() throws {
        leveldb_close(db)
        leveldb_writeoptions_destroy(writeOptions)
        leveldb_writeoptions_destroy(syncWriteOptions)
        leveldb_readoptions_destroy(readOptions)
        leveldb_options_destroy(options)
        leveldb_cache_destroy(cache)
    }
}
