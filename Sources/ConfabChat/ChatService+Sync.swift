extension ChatService {
    /// One chat's messages before a seq, newest first: page backwards by passing the oldest
    /// message's seq as the next `before`.
    func history(_ userId: String, chatId: Int64, before: Int64?, limit: Int) async throws -> HistoryPage {
        guard (1...limits.maxHistoryLimit).contains(limit) else {
            throw ChatError(.badRequest, "limit is 1 to \(limits.maxHistoryLimit)")
        }
        _ = try await requireMember(userId, of: chatId)
        let run = try await log.run(chatId: chatId, before: before, limit: limit + 1, maxBytes: limits.maxHistoryBytes)
        let rows = run.messages
        // The newest run before `before`, cut at `limit` or the byte budget: the next page starts
        // before its oldest message, so a cut page skips nothing. Reads that stopped at the budget
        // may have left older messages unread, so such a page says `more` even when it took every
        // row read (one message larger than the budget).
        var bytes = 0
        var taken = 0
        while taken < min(rows.count, limit) {
            let size = rows[taken].jsonBytesBound
            if taken > 0 && bytes + size > limits.maxHistoryBytes { break }
            bytes += size
            taken += 1
        }
        return HistoryPage(messages: Array(rows.prefix(taken)), more: rows.count > taken || run.stoppedAtBudget)
    }

    /// Catch-up: for every chat the user is in, the messages after the device's cursor for it
    /// (0 — the whole history — for a chat missing from `cursors`), oldest first per chat, at most
    /// `limit` in all. The answer's cursors say, per chat, up to which seq the device now holds
    /// every message; `more` when some chat has more after its cursor.
    ///
    /// Why a per-chat seq cursor cannot skip: each chat's owner writes batch k+1 only after batch
    /// k is on a QUORUM, so below any seq a QUORUM read returns, every message is readable; the
    /// read here returns a contiguous run after the cursor, and the cursor moves to its end.
    ///
    /// A user's syncs run one at a time on this server, paced by `Limits.syncsPerSecond`
    /// (`SyncGate`): the bound on what catch-up costs per user.
    func sync(_ userId: String, cursors: [Int64: Int64], limit: Int) async throws -> SyncPage {
        guard (1...limits.maxSyncLimit).contains(limit) else {
            throw ChatError(.badRequest, "limit is 1 to \(limits.maxSyncLimit)")
        }
        return try await syncGate.run(userId) { try await unpacedSync(userId, cursors: cursors, limit: limit) }
    }

    private func unpacedSync(_ userId: String, cursors: [Int64: Int64], limit: Int) async throws -> SyncPage {
        let chats = Array(Set(try await store.userChats(userId).map(\.chatId))).sorted()
        var runsByChat: [Int64: ChatLog.MessageRun] = [:]
        try await withThrowingTaskGroup(of: (Int64, ChatLog.MessageRun).self) { group in
            var next = 0
            func add() {
                guard next < chats.count else { return }
                let chatId = chats[next]
                next += 1
                group.addTask {
                    (
                        chatId,
                        try await self.log.run(
                            chatId: chatId, after: cursors[chatId] ?? 0, limit: limit + 1,
                            maxBytes: self.limits.maxSyncBytes)
                    )
                }
            }
            for _ in 0..<limits.listConcurrency * 2 { add() }
            for try await (chatId, run) in group {
                runsByChat[chatId] = run
                add()
            }
        }
        var page = SyncPage(messages: [], cursors: [:], more: false)
        var bytes = 0
        for chatId in chats {
            let run = runsByChat[chatId]
            let rows = run?.messages ?? []
            // A prefix of each chat's run after its cursor, within `limit` messages and
            // `maxSyncBytes`: the cursor moves to its end, so nothing is skipped.
            var taken = 0
            while taken < rows.count, page.messages.count < limit {
                let size = rows[taken].jsonBytesBound
                if !page.messages.isEmpty && bytes + size > limits.maxSyncBytes { break }
                bytes += size
                page.messages.append(rows[taken])
                taken += 1
            }
            page.cursors[chatId] = taken > 0 ? rows[taken - 1].seq : cursors[chatId] ?? 0
            // A read that stopped at the budget may have left messages unread (as in `history`).
            if rows.count > taken || run?.stoppedAtBudget == true { page.more = true }
        }
        return page
    }
}
