import ConfabEngine

extension MerkleTree {
    /// Builds the tree of one replica's data for `table` in `range`, as a repair validation does.
    ///
    /// Each partition header and each row is hashed with its key and its reconciled value, after
    /// dropping rows the partition's own deletions shadow entirely — two replicas holding the same
    /// logical data hash alike even if only one has compacted away what a delete shadows. Memory is
    /// the tree alone: the scan streams.
    package static func build(from engine: StorageEngine, table: TableID, range: TokenRange, depth: Int = 10) throws
        -> MerkleTree
    {
        var tree = MerkleTree(range: range, depth: depth)
        for piece in range.unwrapped() {
            guard let tokens = piece.scanTokens else { continue }
            var partition: [UInt8] = []
            var header = PartitionHeader()
            try engine.scan(table: table, tokens: tokens) { entry in
                if entry.partitionKey != partition {
                    partition = entry.partitionKey
                    header = PartitionHeader()
                }
                var bytes = entry.partitionKey
                bytes.append(0xFF)
                bytes += entry.clustering
                switch entry.value {
                case .header(let h):
                    header = h
                    EntryValue.header(h).encode(into: &bytes)
                case .row(var row):
                    if let d = header.deletion(covering: entry.clustering) {
                        row.applyDeletion(d)
                        if let own = row.deletion, own <= d { row.deletion = nil }
                    }
                    if row.liveness == nil && row.deletion == nil && row.cells.isEmpty { return true }
                    EntryValue.row(row).encode(into: &bytes)
                }
                tree.add(token: Token(entry.token), bytes: bytes)
                return true
            }
        }
        return tree
    }
}

extension TokenRange {
    /// The closed token interval of a non-wrapping range `(start, end]`, for `StorageEngine.scan`;
    /// nil when it holds no token.
    var scanTokens: ClosedRange<Int64>? {
        guard start < end else { return nil }
        return (start.value + 1)...end.value
    }
}
