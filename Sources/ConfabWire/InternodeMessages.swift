import ConfabEngine
import ConfabRing

/// A replica's answer to a `ReplicaRead`: the slice's raw data (header and row fragments with
/// timestamps and tombstones, as the ring's `ReadCoordinator` reconciles them) or only its digest.
///
/// The digest is ConfabRing's `ReplicaReadResult.digest()` of the same data, computed by the
/// replica, so a coordinator compares a digest answer with `digest()` of a data answer directly.
package enum ReplicaReadResponse: Hashable, Sendable {
    case data(ReplicaReadResult)
    case digest(ReadDigest)
}

/// A hint delivered to the replica that missed the write (hinted handoff). The replica applies
/// the mutation (with its original timestamps, so a replay is idempotent) and answers
/// `HintReplayAck` with the same id, after which the coordinator deletes the hint.
package struct HintReplay: Hashable, Sendable {
    /// The coordinator's id of the hint, echoed in the acknowledgement.
    package var id: UInt64
    package var mutation: Mutation

    package init(id: UInt64, mutation: Mutation) {
        self.id = id
        self.mutation = mutation
    }
}
