import ConfabEngine

/// Reads a token range of a replica's data as mutations, for streaming on repair, bootstrap and
/// decommission. Mutations carry the original timestamps and tombstones, so applying them on the
/// receiver is idempotent and commutes with concurrent writes (newest timestamp wins): a stream
/// can be retried or interrupted without harm.
package enum RangeStreamer {
    /// Calls `body` with mutations of at most `maxRows` rows each, in token order, until it returns
    /// false. A partition larger than `maxRows` arrives as several mutations; its header travels
    /// with the first.
    package static func mutations(
        from engine: StorageEngine, table: TableID, range: TokenRange, maxRows: Int = 500,
        _ body: (Mutation) throws -> Bool
    ) throws {
        precondition(maxRows > 0)
        var pending: Mutation? = nil
        var stopped = false
        func flush() throws {
            if let m = pending, !(m.header.isEmpty && m.rows.isEmpty) {
                if try !body(m) { stopped = true }
            }
            pending = nil
        }
        for piece in range.unwrapped() {
            guard let tokens = piece.scanTokens, !stopped else { continue }
            try engine.scan(table: table, tokens: tokens) { entry in
                if pending?.partitionKey != entry.partitionKey || (pending?.rows.count ?? 0) >= maxRows {
                    try flush()
                    if stopped { return false }
                    pending = Mutation(table: table, partitionKey: entry.partitionKey)
                }
                switch entry.value {
                case .header(let h): pending!.header = PartitionHeader.merge(pending!.header, h)
                case .row(let r): pending!.rows.append(Mutation.Row(clustering: entry.clustering, fragment: r))
                }
                return true
            }
            if !stopped { try flush() }
        }
    }
}
