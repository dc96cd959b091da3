import Foundation

extension ChatService {
    /// Accepts a message: checks it, stores it at QUORUM, queues it for every connected device of
    /// every member (the sender's other devices included), then returns the ack.
    ///
    /// Order of writes: the `message_ids` row first, then the message. A retry with the same
    /// client id finds the row, rewrites the message (a no-op if it is there, a repair if the first
    /// attempt died in between) and gets the first attempt's ack without a second delivery. So a
    /// message is stored at most once per client id and, once acknowledged, is in the ring.
    func send(_ userId: String, chatId: Int64, clientId: String, text: String, excludingDevice: UInt64? = nil) async throws -> SendAck {
        guard !clientId.isEmpty, clientId.utf8.count <= 128 else {
            throw ChatError(.badRequest, "clientId is 1 to 128 bytes chosen by the device, the same on retries")
        }
        let scalars = text.unicodeScalars.count
        guard scalars <= limits.maxMessageScalars else {
            throw ChatError(.messageTooLong, "a message is at most \(limits.maxMessageScalars) characters (Unicode scalars); this one has \(scalars). Nothing was stored.")
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ChatError(.badRequest, "a message needs some text")
        }
        let key = SendKey(chatId: chatId, sender: userId, clientId: clientId)
        let (task, first) = inFlight.withLockedValue { running -> (Task<SendAck, any Error>, Bool) in
            if let t = running[key] { return (t, false) }
            let t = Task { try await self.store(userId, chatId: chatId, clientId: clientId, text: text, excludingDevice: excludingDevice) }
            running[key] = t
            return (t, true)
        }
        defer { if first { _ = inFlight.withLockedValue { $0.removeValue(forKey: key) } } }
        let started = ContinuousClock.now
        var ack = try await task.value
        if !first { ack.duplicate = true }
        if ack.duplicate { ChatMetrics.shared.duplicates.increment() } else { ChatMetrics.shared.messages.increment() }
        let elapsed = ContinuousClock.now - started
        ChatMetrics.shared.sendDuration.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        return ack
    }

    private func store(_ userId: String, chatId: Int64, clientId: String, text: String, excludingDevice: UInt64?) async throws -> SendAck {
        async let membersRead = requireMember(userId, of: chatId)
        async let earlierRead = store.clientSend(chatId: chatId, sender: userId, clientId: clientId)
        let (members, earlier) = try await (membersRead, earlierRead)
        if let earlier {
            try await store.putMessage(MessageRecord(chatId: chatId, messageId: earlier.messageId, ts: earlier.ts, sender: userId,
                                                     text: text, clientId: clientId))
            return SendAck(chatId: chatId, messageId: earlier.messageId, ts: earlier.ts, clientId: clientId, duplicate: true)
        }
        guard limiter.allow(userId) else {
            throw ChatError(.rateLimited, "too many messages: at most \(Int(limiter.ratePerSecond)) a second (bursts of \(Int(limiter.burst))); nothing was stored, retry shortly")
        }
        let message = MessageRecord(chatId: chatId, messageId: UUID().uuidString.lowercased(), ts: stamper.next(), sender: userId,
                                    text: text, clientId: clientId)
        try await store.putClientSend(chatId: chatId, sender: userId, clientId: clientId, ts: message.ts, messageId: message.messageId)
        try await store.putMessage(message)
        let ack = SendAck(chatId: chatId, messageId: message.messageId, ts: message.ts, clientId: clientId, duplicate: false)
        // Delivery only queues (see `Delivery`), so the ack is not held up by slow devices; doing it
        // here, in line, keeps one sender's messages in order on every device.
        await delivery.deliver(.message(message), to: Set(members.map(\.userId)), excludingDevice: excludingDevice)
        return ack
    }

    /// Moves the user's read cursor forward (never back: see `ChatStore.putReadCursor`) and tells
    /// the chat's members (receipts, and the user's other devices clear their unread count).
    func markRead(_ userId: String, chatId: Int64, cursor: ReadCursor) async throws {
        guard cursor.ts > 0, cursor.ts <= clock.nowMicros() + 60_000_000 else {
            throw ChatError(.badRequest, "ts is the µs timestamp of a message you have read")
        }
        let members = try await requireMember(userId, of: chatId)
        try await store.putReadCursor(chatId: chatId, userId: userId, cursor: cursor)
        await delivery.deliver(.read(chatId: chatId, userId: userId, cursor: cursor), to: Set(members.map(\.userId)), excludingDevice: nil)
    }

    /// Relays "is typing" to the chat's other members. Never stored; at most a few a second per
    /// user (extra ones are dropped silently — devices repeat them anyway).
    func typing(_ userId: String, chatId: Int64) async throws {
        var members = try await cachedMembers(userId, of: chatId)
        guard typingLimiter.allow(userId) else { return }
        members.remove(userId)
        await delivery.deliver(.typing(chatId: chatId, userId: userId), to: members, excludingDevice: nil)
    }
}
