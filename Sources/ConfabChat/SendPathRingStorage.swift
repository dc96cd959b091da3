import ConfabEngine
import ConfabRing
import ConfabWire

/// The ring as the send path (`ChatSequencer`) sees it: every request passes to `inner` and is
/// counted in `confab_chat_send_ring_reads_total` / `confab_chat_send_ring_writes_total`, so the
/// ring requests a send costs can be measured on a running server (the chat benchmark divides them
/// by `confab_chat_messages_total`; issue 11's target is no read and one write per send).
struct SendPathRingStorage: RingStorage {
    let inner: any RingStorage

    @discardableResult
    func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck {
        ChatMetrics.shared.sendRingWrites.increment()
        return try await inner.write(mutation, consistency: consistency)
    }

    func read(_ query: SliceQuery, consistency: ConsistencyLevel) async throws -> ReplicaRows {
        ChatMetrics.shared.sendRingReads.increment()
        return try await inner.read(query, consistency: consistency)
    }
}
