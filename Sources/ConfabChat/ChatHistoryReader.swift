import ConfabEngine
import ConfabRing

/// Reads a chat's log as the chat servers wrote it, for tools (`confab chat history`): no
/// membership check — whoever can reach the ring can read it.
public struct ChatHistoryReader: Sendable {
    private let log: ChatLog

    public init(storage: any RingStorage, consistency: ConsistencyLevel = .quorum) {
        var store = ChatCatalog(storage: storage, clock: SystemClock())
        store.consistency = consistency
        self.log = ChatLog(store: store)
    }

    /// Messages with seq < `before` (or the newest), newest first.
    public func messages(chatId: Int64, before: Int64?, limit: Int) async throws -> [MessageRecord] {
        try await log.messages(chatId: chatId, before: before, limit: limit)
    }
}
