import ConfabEngine
import ConfabRing
import NIOPosix

/// The blocking engine work behind `confab flush`/`compact` and repair, run on the node's thread
/// pool: a flush waits for SSTable writes and fsyncs, a compaction rewrites every SSTable, and a
/// Merkle tree or stream scans a whole range — none of it may run on an event loop or hold a
/// cooperative-pool thread.
extension LocalReplica {
    /// Writes the memtable to an SSTable and waits until it is on disk.
    func flush() async throws {
        let engine = self.engine
        try await threadPool.runIfActive { try engine.flush() }
    }

    /// Flushes, then merges every SSTable into one (a major compaction).
    func compact() async throws {
        let engine = self.engine
        try await threadPool.runIfActive { try engine.compact() }
    }

    /// This replica's Merkle tree of `table` in `range` (a repair validation).
    func merkleTree(table: TableID, range: TokenRange, depth: Int) async throws -> MerkleTree {
        let engine = self.engine
        return try await quarantiningCorruption {
            try MerkleTree.build(from: engine, table: table, range: range, depth: depth)
        }
    }

    /// This replica's data of `table` in `range` as mutations of at most 500 rows, timestamps and
    /// tombstones included (what repair streams). The whole range is read into memory: repair
    /// streams only the sub-ranges whose Merkle leaves differ, which are small.
    func mutations(table: TableID, range: TokenRange) async throws -> [Mutation] {
        let engine = self.engine
        return try await quarantiningCorruption {
            var out: [Mutation] = []
            try RangeStreamer.mutations(from: engine, table: table, range: range) {
                out.append($0)
                return true
            }
            return out
        }
    }
}
