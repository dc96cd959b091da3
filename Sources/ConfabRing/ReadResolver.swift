import ConfabEngine

/// Reconciles replicas' answers: last write wins per cell by timestamp, deletions shadow what they
/// cover (Cassandra's `DataResolver`). Pure functions; merging is commutative and idempotent, so
/// the order answers arrive in does not matter.
enum ReadResolver {
    /// The union of the replicas' data, newest per cell, normalized.
    static func merge(_ results: [ReplicaReadResult]) -> ReplicaReadResult {
        // One answer (ONE, or a QUORUM whose digests agreed): nothing to merge.
        if results.count == 1 { return results[0].normalized() }
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
    static func repairs(merged: ReplicaReadResult, responses: [NodeID: ReplicaReadResult]) -> [NodeID:
        ReplicaReadResult]
    {
        var out: [NodeID: ReplicaReadResult] = [:]
        for (node, response) in responses {
            let mine = response.normalized()
            var diff = ReplicaReadResult()
            if PartitionHeader.merge(mine.header, merged.header) != mine.header { diff.header = merged.header }
            // Both row lists are normalized (sorted, one row per key): walk them together.
            var k = 0
            for row in merged.rows {
                while k < mine.rows.count, compareBytes(mine.rows[k].clustering, row.clustering) < 0 { k += 1 }
                if k < mine.rows.count, mine.rows[k].clustering == row.clustering {
                    let f = mine.rows[k].fragment
                    if RowFragment.merge(f, row.fragment) == f { continue }
                }
                diff.rows.append(row)
            }
            if !diff.isEmpty { out[node] = diff }
        }
        return out
    }

    /// How far a round of replica answers can be trusted: the first, in query order, of the keys
    /// at which replicas stopped because they reached the limit (nil when none did — every answer
    /// covers the whole slice). Past it, at least one replica has not looked, so a merge there
    /// could return a row that replica deleted or miss one only it holds (Cassandra's short-read
    /// problem).
    static func boundary(_ responses: [ReplicaReadResult], reversed: Bool) -> [UInt8]? {
        var out: [UInt8]? = nil
        for c in responses.compactMap(\.cursor) {
            guard let b = out else {
                out = c
                continue
            }
            let order = compareBytes(c, b)
            if reversed ? order > 0 : order < 0 { out = c }
        }
        return out
    }

    /// `response` split at `boundary`: the rows up to and including it in query order (with the
    /// header), and the rows past it (with the header, cursor kept).
    static func split(
        _ response: ReplicaReadResult, at boundary: [UInt8]?,
        reversed: Bool
    ) -> (covered: ReplicaReadResult, beyond: ReplicaReadResult) {
        let n = response.normalized()
        guard let boundary else { return (n, ReplicaReadResult(header: n.header, cursor: n.cursor)) }
        var covered = ReplicaReadResult(header: n.header)
        var beyond = ReplicaReadResult(header: n.header, cursor: n.cursor)
        for row in n.rows {
            let order = compareBytes(row.clustering, boundary)
            if reversed ? order >= 0 : order <= 0 { covered.rows.append(row) } else { beyond.rows.append(row) }
        }
        return (covered, beyond)
    }

    /// The visible rows of `merged` for `query` at `nowSeconds` (TTL expiry), in query order,
    /// at most `query.limit`. A full page carries a cursor (its last row) even when nothing
    /// follows: only a shorter page can know the slice ended, and a missing cursor tells the
    /// client the slice is complete.
    static func resolve(_ merged: ReplicaReadResult, query: SliceQuery, nowSeconds: Int64) -> ReadResult {
        var rows: [ReadResult.Row] = []
        var tombstones = 0
        let ordered = query.reversed ? Array(merged.rows.reversed()) : merged.rows
        for row in ordered {
            if rows.count == query.limit { break }
            let live = row.fragment.cells.filter { $0.isLive(now: nowSeconds) }
            tombstones += row.fragment.cells.count - live.count + (row.fragment.deletion == nil ? 0 : 1)
            guard row.fragment.isLive(now: nowSeconds) else { continue }
            rows.append(ReadResult.Row(clustering: row.clustering, cells: live))
        }
        let full = query.limit > 0 && rows.count == query.limit
        return ReadResult(rows: rows, cursor: full ? rows.last?.clustering : nil, tombstonesScanned: tombstones)
    }
}
