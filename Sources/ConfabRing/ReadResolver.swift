import ConfabEngine

/// Reconciles replicas' answers: last write wins per cell by timestamp, deletions shadow what they
/// cover (Cassandra's `DataResolver`). Pure functions; merging is commutative and idempotent, so
/// the order answers arrive in does not matter.
enum ReadResolver {
    /// The union of the replicas' data, newest per cell, normalized.
    static func merge(_ results: [ReplicaReadResult]) -> ReplicaReadResult {
        var header = PartitionHeader()
        var rows: [Mutation.Row] = []
        for r in results {
            header = PartitionHeader.merge(header, r.header)
            rows += r.rows
        }
        return ReplicaReadResult(header: header, rows: rows).normalized()
    }

    /// What each replica lacks compared with `merged`: the partition header if the replica's is
    /// older, and every row whose merge with the replica's version changes that version. Replicas
    /// that are up to date are absent from the answer.
    static func repairs(merged: ReplicaReadResult, responses: [NodeID: ReplicaReadResult]) -> [NodeID: ReplicaReadResult] {
        var out: [NodeID: ReplicaReadResult] = [:]
        for (node, response) in responses {
            let mine = response.normalized()
            var diff = ReplicaReadResult()
            if PartitionHeader.merge(mine.header, merged.header) != mine.header { diff.header = merged.header }
            var have: [[UInt8]: RowFragment] = [:]
            for row in mine.rows { have[row.clustering] = row.fragment }
            for row in merged.rows {
                if let f = have[row.clustering], RowFragment.merge(f, row.fragment) == f { continue }
                diff.rows.append(row)
            }
            if !diff.isEmpty { out[node] = diff }
        }
        return out
    }

    /// The visible rows of `merged` for `query` at `nowSeconds` (TTL expiry), in query order,
    /// at most `query.limit`.
    static func resolve(_ merged: ReplicaReadResult, query: SliceQuery, nowSeconds: Int64) -> ReadResult {
        var rows: [ReadResult.Row] = []
        var tombstones = 0
        let ordered = query.reversed ? Array(merged.rows.reversed()) : merged.rows
        var more = false
        for row in ordered {
            let live = row.fragment.cells.filter { $0.isLive(now: nowSeconds) }
            tombstones += row.fragment.cells.count - live.count + (row.fragment.deletion == nil ? 0 : 1)
            guard row.fragment.isLive(now: nowSeconds) else { continue }
            if rows.count == query.limit { more = true; break }
            rows.append(ReadResult.Row(clustering: row.clustering, cells: live))
        }
        return ReadResult(rows: rows, cursor: more ? rows.last?.clustering : nil, tombstonesScanned: tombstones)
    }
}
