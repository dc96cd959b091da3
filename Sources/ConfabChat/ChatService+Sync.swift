extension ChatService {
    /// One chat's messages before a position, newest first: page backwards by passing the last
    /// (oldest) message's ts and messageId as the next `before`/`beforeId`.
    func history(_ userId: String, chatId: Int64, before: Int64?, beforeId: String?, limit: Int) async throws -> HistoryPage {
        guard (1...limits.maxHistoryLimit).contains(limit) else {
            throw ChatError(.badRequest, "limit is 1 to \(limits.maxHistoryLimit)")
        }
        _ = try await requireMember(userId, of: chatId)
        let rows = try await store.messages(chatId: chatId, before: before.map { ($0, beforeId) }, limit: limit + 1, newestFirst: true)
        return HistoryPage(messages: Array(rows.prefix(limit)), more: rows.count > limit)
    }

    /// Catch-up: every message with ts > `since` in every chat the user is in, oldest first, at
    /// most about `limit` per page. Devices keep the returned cursor and ask again while `more`.
    ///
    /// One read per chat (limit + 1 rows each), merged. Only messages older than the first ts at
    /// which some chat's read was cut off are returned, and a page never splits the messages of one
    /// ts, so a cursor never skips a message. Chats the user has left are not included.
    func sync(_ userId: String, since: Int64, limit: Int) async throws -> SyncPage {
        guard (1...limits.maxSyncLimit).contains(limit) else { throw ChatError(.badRequest, "limit is 1 to \(limits.maxSyncLimit)") }
        let chats = try await store.userChats(userId)
        var merged: [MessageRecord] = []
        var cutoff: Int64? = nil
        var truncated: [Int64] = []
        try await withThrowingTaskGroup(of: (Int64, [MessageRecord]).self) { group in
            var next = 0
            func add() {
                guard next < chats.count else { return }
                let chatId = chats[next].chatId
                next += 1
                group.addTask {
                    (chatId, try await self.store.messages(chatId: chatId, after: (since, nil), limit: limit + 1, newestFirst: false))
                }
            }
            for _ in 0..<limits.listConcurrency * 2 { add() }
            for try await (chatId, rows) in group {
                if rows.count > limit, let last = rows.last {
                    cutoff = min(cutoff ?? .max, last.ts)
                    truncated.append(chatId)
                }
                merged += rows
                add()
            }
        }
        merged.sort { $0.precedes($1) }
        var complete = merged
        if let cutoff {
            complete = merged.filter { $0.ts < cutoff }
            if complete.isEmpty {
                // Some chat holds more than `limit` messages of the single ts `cutoff` (servers
                // stamping the same µs): read that ts whole in the cut-off chats, so the page
                // ends on a complete ts and the cursor skips nothing.
                var group = merged.filter { $0.ts == cutoff && !truncated.contains($0.chatId) }
                for chatId in truncated {
                    group += try await store.messages(chatId: chatId, after: (cutoff - 1, nil), before: (cutoff + 1, nil),
                                                      limit: 100_000, newestFirst: false)
                }
                complete = group.sorted { $0.precedes($1) }
            }
        }
        var page = Array(complete.prefix(limit))
        if page.count < complete.count, let lastTs = page.last?.ts, complete[page.count].ts == lastTs {
            let trimmed = page.filter { $0.ts < lastTs }
            page = trimmed.isEmpty ? complete.filter { $0.ts <= lastTs } : trimmed
        }
        let more = cutoff != nil || page.count < merged.count
        return SyncPage(messages: page, cursor: page.last?.ts ?? since, more: more)
    }
}
