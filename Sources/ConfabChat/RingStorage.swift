import ConfabClient
import ConfabEngine
import ConfabRing
import ConfabWire

/// What the chat server needs from the ring: single-partition writes and slice reads at a
/// consistency level. `ConfabClient` is the real one; `InMemoryRingStorage` stands in for tests.
///
/// Guarantee expected of an implementation (the client's): `write` returns once the mutation is
/// durable on as many replicas as `consistency` asks; a write that throws may or may not have been
/// applied, and retrying it is idempotent (cells carry their own timestamps). A QUORUM read sees
/// every QUORUM write acknowledged before it started.
public protocol RingStorage: Sendable {
    @discardableResult
    func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck
    func read(_ query: SliceQuery, consistency: ConsistencyLevel) async throws -> ReplicaRows
}

extension ConfabClient: RingStorage {}
