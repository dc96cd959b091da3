import Foundation
import Metrics

/// Decoded data blocks shared across readers and iterators, least recently used evicted first,
/// bounded by the bytes the blocks occupy in memory. Keyed by (file number, block offset): file
/// numbers are never reused, so a deleted file's blocks can never be served for a new file.
/// Compaction calls `evict(fileNumber:)` for the tables it removes, so their blocks do not hold
/// memory (and push live blocks out) until they age out; a read still running on a removed
/// table cannot put them back.
///
/// Thread-safe: one lock around the map and the recency list. Blocks are immutable, so a block
/// handed out stays valid after it is evicted.
package final class BlockCache: @unchecked Sendable {
    struct Key: Hashable {
        var fileNumber: UInt64
        var offset: UInt64
    }

    /// Both links are strong: a weak one cost a side-table allocation per node and an atomic
    /// weak load or store per move (`swift_weakAssign`/`swift_weakLoadStrong`, a third of
    /// `BlockCache.get` in a latest-50 read profile). `unlink` clears both, and `deinit` breaks
    /// what is left, so nodes are never kept alive by each other.
    private final class Node {
        let key: Key
        let block: DataBlock
        var newer: Node?
        var older: Node?
        init(key: Key, block: DataBlock) {
            self.key = key
            self.block = block
        }
    }

    package let capacityBytes: Int
    private let lock = BlockingMutex()
    private var map: [Key: Node] = [:]
    /// Most recently used end of the list (`newest`), and least (`oldest`).
    private var newest: Node?
    private var oldest: Node?
    private var usedBytes = 0
    private var hitCount: UInt64 = 0
    private var missCount: UInt64 = 0
    /// Files whose blocks were evicted for good: later inserts for them are ignored.
    private var retired: Set<UInt64> = []

    /// Exported for the hit rate (`confab_engine_block_cache_hits_total` / `_misses_total`).
    private let exportedHits = Counter(label: "confab_engine_block_cache_hits_total")
    private let exportedMisses = Counter(label: "confab_engine_block_cache_misses_total")

    package init(capacityBytes: Int) {
        self.capacityBytes = max(0, capacityBytes)
    }

    deinit {
        var node = newest
        while let n = node {
            node = n.older
            n.older = nil
            n.newer = nil
        }
    }

    package var hits: UInt64 { lock.withLock { hitCount } }
    package var misses: UInt64 { lock.withLock { missCount } }
    package var bytesUsed: Int { lock.withLock { usedBytes } }
    package var count: Int { lock.withLock { map.count } }

    /// Blocks cached for one file.
    package func count(fileNumber: UInt64) -> Int {
        lock.withLock { map.keys.reduce(0) { $0 + ($1.fileNumber == fileNumber ? 1 : 0) } }
    }

    /// The cached block, made the most recently used; `touch: false` only looks (no recency
    /// change, not counted as a hit or miss).
    func get(fileNumber: UInt64, offset: UInt64, touch: Bool = true) -> DataBlock? {
        let block: DataBlock? = lock.withLock {
            guard let node = map[Key(fileNumber: fileNumber, offset: offset)] else {
                if touch { missCount += 1 }
                return nil
            }
            guard touch else { return node.block }
            hitCount += 1
            if node !== newest {
                unlink(node)
                pushNewest(node)
            }
            return node.block
        }
        // Outside the lock: the exported counters are atomics of their own.
        if !touch { return block }
        if block == nil { exportedMisses.increment() } else { exportedHits.increment() }
        return block
    }

    /// Caches `block`; a block larger than the whole capacity is not kept.
    func insert(fileNumber: UInt64, offset: UInt64, block: DataBlock) {
        let charge = block.charge
        guard charge <= capacityBytes else { return }
        let key = Key(fileNumber: fileNumber, offset: offset)
        lock.withLock {
            if retired.contains(fileNumber) { return }
            if let old = map.removeValue(forKey: key) {
                unlink(old)
                usedBytes -= old.block.charge
            }
            let node = Node(key: key, block: block)
            map[key] = node
            pushNewest(node)
            usedBytes += charge
            while usedBytes > capacityBytes, let victim = oldest {
                unlink(victim)
                map.removeValue(forKey: victim.key)
                usedBytes -= victim.block.charge
            }
        }
    }

    /// Drops every block of a file (after the file is deleted by compaction).
    package func evict(fileNumber: UInt64) {
        lock.withLock {
            retired.insert(fileNumber)
            for (key, node) in map where key.fileNumber == fileNumber {
                unlink(node)
                map.removeValue(forKey: key)
                usedBytes -= node.block.charge
            }
        }
    }

    private func unlink(_ node: Node) {
        if let n = node.newer { n.older = node.older } else { newest = node.older }
        if let o = node.older { o.newer = node.newer } else { oldest = node.newer }
        node.newer = nil
        node.older = nil
    }

    private func pushNewest(_ node: Node) {
        node.older = newest
        node.newer = nil
        newest?.newer = node
        newest = node
        if oldest == nil { oldest = node }
    }
}
