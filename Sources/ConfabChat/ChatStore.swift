import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation

/// Typed reads and writes of the chat tables (docs/chat_data.md) over any `ChatStorage`. Every
/// request is QUORUM, so a read sees every acknowledged write, whichever chat server made it.
/// Storage failures come out as `ChatError.storageUnavailable`; a write that failed may or may not
/// have been applied (retrying is safe: every write here is idempotent).
struct ChatStore: Sendable {
    let storage: any ChatStorage
    let clock: any EngineClock
    var consistency: ConsistencyLevel = .quorum

    init(storage: any ChatStorage, clock: any EngineClock) {
        self.storage = storage
        self.clock = clock
    }

    // MARK: Plumbing

    func write(_ mutation: Mutation) async throws {
        do {
            try await storage.write(mutation, consistency: consistency)
        } catch {
            throw ChatError(.storageUnavailable, "the ring did not acknowledge a write (\(error)); nothing is promised stored, retry")
        }
    }

    func read(_ query: SliceQuery) async throws -> [LiveRow] {
        do {
            return try await storage.read(query, consistency: consistency).liveRows(nowSeconds: clock.nowSeconds())
        } catch {
            throw ChatError(.storageUnavailable, "the ring could not answer a read (\(error)); retry")
        }
    }

    private func row(_ w: RowWrite, writeTime: Int64? = nil) -> Mutation {
        w.mutation(writeTime: writeTime ?? clock.nowMicros(), nowSeconds: clock.nowSeconds())
    }

    private func exactly(_ table: TableID, _ partition: [UInt8], _ clustering: ClusteringKey) -> SliceQuery {
        SliceQuery(table: table, partitionKey: partition, lower: ClusteringBound(clustering, inclusive: true),
                   upper: ClusteringBound(clustering, inclusive: true), limit: 1)
    }

    // MARK: Users

    /// Writes a user row. Cells carry the inverted creation time as their write timestamp, so when
    /// two servers register the same handle at once the earlier registration wins on every replica
    /// (see `AccountService.register`).
    func putUser(_ user: UserRecord) async throws {
        try await write(row(RowWrite(table: ChatTables.users, partitionKey: ChatTables.key(user: user.userId),
                                     clustering: ChatTables.singleRow,
                                     cells: [(ChatTables.UserColumn.passwordHash, Array(user.passwordHash.utf8)),
                                             (ChatTables.UserColumn.createdAt, .int64(user.createdAt))]),
                            writeTime: Int64.max / 2 - user.createdAt))
    }

    func user(_ userId: String) async throws -> UserRecord? {
        let rows = try await read(exactly(ChatTables.users, ChatTables.key(user: userId), ClusteringKey(encoded: ChatTables.singleRow)))
        guard let r = rows.first, let hash = r.string(ChatTables.UserColumn.passwordHash) else { return nil }
        return UserRecord(userId: userId, passwordHash: hash, createdAt: r.int64(ChatTables.UserColumn.createdAt) ?? 0)
    }

    // MARK: Chats and members

    func putChat(_ chat: ChatRecord) async throws {
        try await write(row(RowWrite(table: ChatTables.chats, partitionKey: ChatTables.key(chat: chat.chatId),
                                     clustering: ChatTables.singleRow,
                                     cells: [(ChatTables.ChatColumn.kind, Array(chat.kind.rawValue.utf8)),
                                             (ChatTables.ChatColumn.title, Array(chat.title.utf8)),
                                             (ChatTables.ChatColumn.createdBy, Array(chat.createdBy.utf8)),
                                             (ChatTables.ChatColumn.createdAt, .int64(chat.createdAt))]),
                            writeTime: chat.createdAt))
    }

    func chat(_ chatId: Int64) async throws -> ChatRecord? {
        let rows = try await read(exactly(ChatTables.chats, ChatTables.key(chat: chatId), ClusteringKey(encoded: ChatTables.singleRow)))
        guard let r = rows.first, let kind = r.string(ChatTables.ChatColumn.kind).flatMap(ChatKind.init(rawValue:)) else { return nil }
        return ChatRecord(chatId: chatId, kind: kind, title: r.string(ChatTables.ChatColumn.title) ?? "",
                          createdBy: r.string(ChatTables.ChatColumn.createdBy) ?? "",
                          createdAt: r.int64(ChatTables.ChatColumn.createdAt) ?? 0)
    }

    /// Adds `userId` to the chat: the `chat_members` row (fan-out) and the `user_chats` row (their
    /// chat list), written in parallel. `title` is what the user's list shows.
    func addMember(chat: ChatRecord, userId: String, role: MemberRole, title: String, joinedAt: Int64) async throws {
        let member = row(RowWrite(table: ChatTables.chatMembers, partitionKey: ChatTables.key(chat: chat.chatId),
                                  clustering: ClusteringKey([.bytes(Array(userId.utf8))]).bytes,
                                  cells: [(ChatTables.MemberColumn.role, Array(role.rawValue.utf8)),
                                          (ChatTables.MemberColumn.joinedAt, .int64(joinedAt))]))
        let entry = row(RowWrite(table: ChatTables.userChats, partitionKey: ChatTables.key(user: userId),
                                 clustering: ClusteringKey([.int64(chat.chatId)]).bytes,
                                 cells: [(ChatTables.UserChatColumn.kind, Array(chat.kind.rawValue.utf8)),
                                         (ChatTables.UserChatColumn.title, Array(title.utf8)),
                                         (ChatTables.UserChatColumn.joinedAt, .int64(joinedAt))]))
        async let a: Void = write(member)
        async let b: Void = write(entry)
        _ = try await (a, b)
    }

    /// Row tombstones for both membership rows.
    func removeMember(chatId: Int64, userId: String) async throws {
        let now = clock.nowMicros(), seconds = clock.nowSeconds()
        let member = RowWrite.delete(table: ChatTables.chatMembers, partitionKey: ChatTables.key(chat: chatId),
                                     clustering: ClusteringKey([.bytes(Array(userId.utf8))]).bytes, writeTime: now, nowSeconds: seconds)
        let entry = RowWrite.delete(table: ChatTables.userChats, partitionKey: ChatTables.key(user: userId),
                                    clustering: ClusteringKey([.int64(chatId)]).bytes, writeTime: now, nowSeconds: seconds)
        async let a: Void = write(member)
        async let b: Void = write(entry)
        _ = try await (a, b)
    }

    /// Every member of a chat (one partition; at most a few more than 100 rows).
    func members(_ chatId: Int64) async throws -> [MemberRecord] {
        let rows = try await read(SliceQuery(table: ChatTables.chatMembers, partitionKey: ChatTables.key(chat: chatId), limit: 1000))
        return rows.compactMap { r in
            guard let id = r.bytesComponent(0) else { return nil }
            return MemberRecord(userId: id, role: r.string(ChatTables.MemberColumn.role).flatMap(MemberRole.init(rawValue:)) ?? .member,
                                joinedAt: r.int64(ChatTables.MemberColumn.joinedAt) ?? 0)
        }
    }

    /// A user's chats (one partition), in chat id order.
    func userChats(_ userId: String) async throws -> [UserChatRecord] {
        let rows = try await read(SliceQuery(table: ChatTables.userChats, partitionKey: ChatTables.key(user: userId), limit: 100_000))
        return rows.compactMap { r in
            guard let id = r.firstInt64 else { return nil }
            return UserChatRecord(chatId: id, kind: r.string(ChatTables.UserChatColumn.kind).flatMap(ChatKind.init(rawValue:)) ?? .group,
                                  title: r.string(ChatTables.UserChatColumn.title) ?? "",
                                  joinedAt: r.int64(ChatTables.UserChatColumn.joinedAt) ?? 0)
        }
    }

    // MARK: Messages

    /// Writes a message to `confab.messages`. The cells' write time is the message's own ts, so
    /// rewriting it (a retry) changes nothing.
    func putMessage(_ m: MessageRecord) async throws {
        var cells: [(UInt32, [UInt8])] = [(ChatTables.MessageColumn.sender, Array(m.sender.utf8)),
                                           (ChatTables.MessageColumn.body, Array(m.text.utf8))]
        if let c = m.clientId { cells.append((ChatTables.MessageColumn.clientId, Array(c.utf8))) }
        try await write(row(RowWrite(table: ChatMessages.table, partitionKey: ChatTables.key(chat: m.chatId),
                                     clustering: ChatMessages.clustering(timestamp: m.ts, messageId: m.messageId), cells: cells),
                            writeTime: m.ts))
    }

    /// Messages of one chat strictly between `after` and `before` (each a (ts, messageId) position;
    /// a nil messageId means "the whole ts"), newest first when `newestFirst`.
    func messages(chatId: Int64, after: (Int64, String?)? = nil, before: (Int64, String?)? = nil, limit: Int,
                  newestFirst: Bool) async throws -> [MessageRecord] {
        func key(_ p: (Int64, String?)) -> ClusteringKey {
            p.1.map { ClusteringKey([.int64(p.0), .bytes(Array($0.utf8))]) } ?? ClusteringKey([.int64(p.0)])
        }
        let query = SliceQuery(table: ChatMessages.table, partitionKey: ChatTables.key(chat: chatId),
                               lower: after.map { ClusteringBound(key($0), inclusive: false) },
                               upper: before.map { ClusteringBound(key($0), inclusive: false) },
                               reversed: newestFirst, limit: limit)
        return try await read(query).compactMap { r in
            guard r.clustering.count == 2, case .int64(let ts) = r.clustering[0], let id = r.bytesComponent(1) else { return nil }
            return MessageRecord(chatId: chatId, messageId: id, ts: ts, sender: r.string(ChatTables.MessageColumn.sender) ?? "",
                                 text: r.string(ChatTables.MessageColumn.body) ?? "", clientId: r.string(ChatTables.MessageColumn.clientId))
        }
    }

    // MARK: Idempotent sends

    private func clientKey(sender: String, clientId: String) -> ClusteringKey {
        ClusteringKey([.bytes(Array(sender.utf8)), .bytes(Array(clientId.utf8))])
    }

    /// The (ts, messageId) an earlier send with this client id got, if any.
    func clientSend(chatId: Int64, sender: String, clientId: String) async throws -> (ts: Int64, messageId: String)? {
        let rows = try await read(exactly(ChatTables.messageIds, ChatTables.key(chat: chatId), clientKey(sender: sender, clientId: clientId)))
        guard let r = rows.first, let ts = r.int64(ChatTables.MessageIdColumn.ts), let id = r.string(ChatTables.MessageIdColumn.messageId)
        else { return nil }
        return (ts, id)
    }

    /// Records which message a client id became. Written with the inverted message time so the
    /// first send of a client id wins if two servers race on the same retry.
    func putClientSend(chatId: Int64, sender: String, clientId: String, ts: Int64, messageId: String) async throws {
        try await write(row(RowWrite(table: ChatTables.messageIds, partitionKey: ChatTables.key(chat: chatId),
                                     clustering: clientKey(sender: sender, clientId: clientId).bytes,
                                     cells: [(ChatTables.MessageIdColumn.ts, .int64(ts)),
                                             (ChatTables.MessageIdColumn.messageId, Array(messageId.utf8))]),
                            writeTime: Int64.max / 2 - ts))
    }

    // MARK: Read cursors

    /// Moves a member's read cursor. The write time is the cursor's own ts, so the furthest cursor
    /// wins on every replica whatever order the writes arrive in — a cursor never moves back.
    func putReadCursor(chatId: Int64, userId: String, cursor: ReadCursor) async throws {
        try await write(row(RowWrite(table: ChatTables.readCursors, partitionKey: ChatTables.key(chat: chatId),
                                     clustering: ClusteringKey([.bytes(Array(userId.utf8))]).bytes,
                                     cells: [(ChatTables.ReadCursorColumn.readTs, .int64(cursor.ts)),
                                             (ChatTables.ReadCursorColumn.readMessageId, Array(cursor.messageId.utf8))]),
                            writeTime: cursor.ts))
    }

    /// Every member's read cursor in a chat (one partition).
    func readCursors(chatId: Int64) async throws -> [String: ReadCursor] {
        let rows = try await read(SliceQuery(table: ChatTables.readCursors, partitionKey: ChatTables.key(chat: chatId), limit: 1000))
        var out: [String: ReadCursor] = [:]
        for r in rows {
            if let user = r.bytesComponent(0), let ts = r.int64(ChatTables.ReadCursorColumn.readTs) {
                out[user] = ReadCursor(ts: ts, messageId: r.string(ChatTables.ReadCursorColumn.readMessageId) ?? "")
            }
        }
        return out
    }

    func readCursor(chatId: Int64, userId: String) async throws -> ReadCursor? {
        let rows = try await read(exactly(ChatTables.readCursors, ChatTables.key(chat: chatId), ClusteringKey([.bytes(Array(userId.utf8))])))
        guard let r = rows.first, let ts = r.int64(ChatTables.ReadCursorColumn.readTs) else { return nil }
        return ReadCursor(ts: ts, messageId: r.string(ChatTables.ReadCursorColumn.readMessageId) ?? "")
    }

    // MARK: Chat servers

    /// A server's heartbeat: its row in `chat.servers`, expiring after `ttlSeconds` unless rewritten.
    func putServer(id: String, address: String, ttlSeconds: Int32) async throws {
        try await write(row(RowWrite(table: ChatTables.servers, partitionKey: ChatTables.serversPartition,
                                     clustering: ClusteringKey([.bytes(Array(id.utf8))]).bytes,
                                     cells: [(ChatTables.ServerColumn.address, Array(address.utf8))], ttl: ttlSeconds)))
    }

    /// Deletes a server's heartbeat (graceful shutdown: the others drop it at once).
    func removeServer(id: String) async throws {
        try await write(RowWrite.delete(table: ChatTables.servers, partitionKey: ChatTables.serversPartition,
                                        clustering: ClusteringKey([.bytes(Array(id.utf8))]).bytes,
                                        writeTime: clock.nowMicros(), nowSeconds: clock.nowSeconds()))
    }

    /// Live servers (rows not yet expired): id → address.
    func servers() async throws -> [String: String] {
        let rows = try await read(SliceQuery(table: ChatTables.servers, partitionKey: ChatTables.serversPartition, limit: 10_000))
        var out: [String: String] = [:]
        for r in rows { if let id = r.bytesComponent(0), let a = r.string(ChatTables.ServerColumn.address) { out[id] = a } }
        return out
    }
}
