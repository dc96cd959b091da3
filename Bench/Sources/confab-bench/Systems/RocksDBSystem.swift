import CRocksDB
import Foundation

/// RocksDB 7.8 (Debian librocksdb-dev) through its C API. Settings matched to Confab's defaults:
/// 64 MiB memtable, 128 MiB LRU block cache, LZ4, two background jobs; leveled compaction.
final class RocksDBSystem: StorageSystem, @unchecked Sendable {
    static let name = "rocksdb"
    static let version = "7.8.3 (Debian librocksdb-dev, C API)"

    static func describe(_ durability: Durability) -> String {
        switch durability {
        case .buffered: return "WAL on, WriteOptions.sync=false (no fsync per write)"
        case .groupSync, .singleSync:
            return "WAL on, WriteOptions.sync=true (fdatasync before ack; concurrent writers share it)"
        }
    }

    private let db: OpaquePointer
    private let options: OpaquePointer
    private let tableOptions: OpaquePointer
    private let cache: OpaquePointer
    private let writeOptions: OpaquePointer
    private let readOptions: OpaquePointer
    private let workload: Workload

    init(directory: String, durability: Durability, workload: Workload) throws {
        self.workload = workload
        options = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(options, 1)
        rocksdb_options_increase_parallelism(options, 2)
        rocksdb_options_set_max_background_jobs(options, 2)
        rocksdb_options_set_write_buffer_size(options, 64 << 20)
        rocksdb_options_set_compression(options, 4)  // rocksdb_lz4_compression
        tableOptions = rocksdb_block_based_options_create()
        cache = rocksdb_cache_create_lru(128 << 20)
        rocksdb_block_based_options_set_block_cache(tableOptions, cache)
        rocksdb_options_set_block_based_table_factory(options, tableOptions)
        var err: UnsafeMutablePointer<CChar>? = nil
        let handle = rocksdb_open(options, directory, &err)
        try RocksDBSystem.check(err, "open")
        guard let handle else { throw BenchError("rocksdb: open returned no handle") }
        db = handle
        writeOptions = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(writeOptions, durability == .buffered ? 0 : 1)
        readOptions = rocksdb_readoptions_create()
    }

    static func check(_ err: UnsafeMutablePointer<CChar>?, _ what: String) throws {
        guard let err else { return }
        let message = String(cString: err)
        rocksdb_free(err)
        throw BenchError("rocksdb \(what): \(message)")
    }

    func write(_ m: MessageRecord, scratch: KVScratch) throws {
        let n = scratch.encode(m, corpus: workload.corpus)
        var err: UnsafeMutablePointer<CChar>? = nil
        scratch.key.withMemoryRebound(to: CChar.self, capacity: Workload.keyBytes) { k in
            scratch.value.withMemoryRebound(to: CChar.self, capacity: n) { v in
                rocksdb_put(db, writeOptions, k, Workload.keyBytes, v, n, &err)
            }
        }
        try RocksDBSystem.check(err, "put")
    }

    /// Flushes the memtable to an SST file and waits (as Confab's flush).
    func finishIngest() throws {
        let fo = rocksdb_flushoptions_create()
        defer { rocksdb_flushoptions_destroy(fo) }
        rocksdb_flushoptions_set_wait(fo, 1)
        var err: UnsafeMutablePointer<CChar>? = nil
        rocksdb_flush(db, fo, &err)
        try RocksDBSystem.check(err, "flush")
    }

    /// Polls RocksDB's own counters until no flush or compaction is pending or running.
    func settle() throws {
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline {
            if property("rocksdb.compaction-pending") == 0, property("rocksdb.num-running-compactions") == 0,
                property("rocksdb.num-running-flushes") == 0, property("rocksdb.mem-table-flush-pending") == 0
            {
                return
            }
            usleep(50_000)
        }
    }

    private func property(_ name: String) -> UInt64 {
        var v: UInt64 = 0
        return rocksdb_property_int(db, name, &v) == 0 ? v : 0
    }

    func latest(chat: Int64, limit: Int, scratch: KVScratch) throws -> Int {
        // Seek to the first key of the next chat, then step back.
        MessageCodec.writeBE64(UInt64(bitPattern: chat) &+ 1, to: scratch.key)
        return scan(chat: chat, seekLength: 8, limit: limit, scratch: scratch)
    }

    func page(chat: Int64, before: Int64, limit: Int, scratch: KVScratch) throws -> Int {
        MessageCodec.writeBE64(UInt64(bitPattern: chat), to: scratch.key)
        MessageCodec.writeBE64(UInt64(bitPattern: before), to: scratch.key + 8)
        return scan(chat: chat, seekLength: 16, limit: limit, scratch: scratch)
    }

    /// Seeks to the first key ≥ the key in `scratch.key`, steps to the one before it, and reads
    /// backwards while the chat prefix matches.
    private func scan(chat: Int64, seekLength: Int, limit: Int, scratch: KVScratch) -> Int {
        let it = rocksdb_create_iterator(db, readOptions)
        defer { rocksdb_iter_destroy(it) }
        scratch.key.withMemoryRebound(to: CChar.self, capacity: seekLength) { rocksdb_iter_seek(it, $0, seekLength) }
        if rocksdb_iter_valid(it) != 0 { rocksdb_iter_prev(it) } else { rocksdb_iter_seek_to_last(it) }
        var prefix = [UInt8](repeating: 0, count: 8)
        prefix.withUnsafeMutableBufferPointer { MessageCodec.writeBE64(UInt64(bitPattern: chat), to: $0.baseAddress!) }
        var rows = 0
        while rows < limit, rocksdb_iter_valid(it) != 0 {
            var klen = 0
            guard let k = rocksdb_iter_key(it, &klen), klen >= 8,
                memcmp(k, prefix, 8) == 0
            else { break }
            var vlen = 0
            let v = rocksdb_iter_value(it, &vlen)
            scratch.touch(UnsafeRawPointer(v), vlen)
            rows += 1
            rocksdb_iter_prev(it)
        }
        return rows
    }

    func close() throws {
        rocksdb_close(db)
        rocksdb_writeoptions_destroy(writeOptions)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_options_destroy(options)
        rocksdb_block_based_options_destroy(tableOptions)
        rocksdb_cache_destroy(cache)
    }
}
