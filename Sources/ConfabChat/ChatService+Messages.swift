import Foundation

/// Where a chat's sends are ordered: this server (nil) or the chat's owner elsewhere, reached over
/// the peer links (`PeerRouting`). Tests and single servers use no router: every chat is local.
protocol ChatRouting: Sendable {
    /// The send's ack from the chat's owner server, or nil when this server owns the chat.
    func forward(chatId: Int64, _ send: ChatSequencer.Send) async throws -> SendAck?
    /// Tells the chat's owner (when it is another server) that its members changed, so its next
    /// batch reads them again (`ChatSequencer.membersChanged`).
    func membersChanged(chatId: Int64) async throws
}

extension ChatService {
    /// Accepts a message: checks it, spends the sender's budget, and has the chat's owner server
    /// place it in the chat's log (`ChatSequencer`): stored at QUORUM, fenced, queued for every
    /// connected device of every member (the sender's other devices included), then acknowledged.
    ///
    /// Idempotent by (chat, sender, clientId): a send whose clientId the owner placed recently,
    /// or — with `retry` — one the ring's index knows, gets the first placement's ack
    /// (`duplicate: true`) and is delivered again (devices de-duplicate by seq). The same clientId
    /// with other text is refused (`client_id_reused`). Nothing is stored twice for one clientId
    /// as long as devices mark resends with `retry` (docs/chat_ordering.md).
    func send(_ userId: String, chatId: Int64, clientId: String, text: String, retry: Bool = false) async throws
        -> SendAck
    {
        guard !clientId.isEmpty, clientId.utf8.count <= 128 else {
            throw ChatError(.badRequest, "clientId is 1 to 128 bytes chosen by the device, the same on retries")
        }
        let scalars = text.unicodeScalars.count
        guard scalars <= limits.maxMessageScalars else {
            throw ChatError(
                .messageTooLong,
                "a message is at most \(limits.maxMessageScalars) characters (Unicode scalars); this one has \(scalars). Nothing was stored."
            )
        }
        // Stops at the first visible scalar. `trimmingCharacters` bridged the whole text through
        // NSString and copied it: 5 % of a chat server's CPU at 2,000 sends/s.
        guard text.unicodeScalars.contains(where: { !CharacterSet.whitespacesAndNewlines.contains($0) }) else {
            throw ChatError(.badRequest, "a message needs some text")
        }
        if let wait = limiter.retryAfter(userId) {
            throw ChatError(
                .rateLimited,
                "too many messages: at most \(Int(limiter.ratePerSecond)) a second (bursts of \(Int(limiter.burst))); nothing was stored, retry shortly",
                retryAfterSeconds: max(1, Int(wait.rounded(.up))))
        }
        let started = ContinuousClock.now
        let send = ChatSequencer.Send(sender: userId, clientId: clientId, text: text, retry: retry)
        let ack: SendAck
        if let forwarded = try await router?.forward(chatId: chatId, send) {
            ack = forwarded
        } else {
            ack = try await sequencer.append(chatId: chatId, send)
        }
        if ack.duplicate { ChatMetrics.shared.duplicates.increment() } else { ChatMetrics.shared.messages.increment() }
        let elapsed = ContinuousClock.now - started
        ChatMetrics.shared.sendDuration.recordNanoseconds(
            elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        return ack
    }

    /// Moves the user's read cursor forward (never back: see `ChatCatalog.putReadCursor`) and tells
    /// the chat's members (receipts, and the user's other devices clear their unread count).
    func markRead(_ userId: String, chatId: Int64, cursor: ReadCursor) async throws {
        guard cursor.seq > 0 else { throw ChatError(.badRequest, "seq is the seq of the newest message you have read") }
        if let wait = receiptLimiter.retryAfter(userId) {
            throw ChatError(
                .rateLimited,
                "too many read receipts: at most \(Int(receiptLimiter.ratePerSecond)) a second (bursts of \(Int(receiptLimiter.burst))); send the newest one again shortly",
                retryAfterSeconds: max(1, Int(wait.rounded(.up))))
        }
        let members = try await requireMember(userId, of: chatId)
        try await store.putReadCursor(chatId: chatId, userId: userId, cursor: cursor)
        await delivery.deliver(
            .read(chatId: chatId, userId: userId, cursor: cursor), to: Set(members.map(\.userId)), excludingDevice: nil)
    }

    /// Relays "is typing" to the chat's other members. Never stored; at most one event per user and
    /// chat every `typingIntervalMicros` (devices repeat while typing; the extra ones are dropped
    /// here, so a fast typist costs the others one event per interval).
    func typing(_ userId: String, chatId: Int64) async throws {
        var members = try await cachedMembers(userId, of: chatId)
        guard typingGate.allow(userId: userId, chatId: chatId) else { return }
        members.remove(userId)
        await delivery.deliver(.typing(chatId: chatId, userId: userId), to: members, excludingDevice: nil)
    }
}
