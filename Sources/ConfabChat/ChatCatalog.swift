import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation

/// Typed reads and writes of the chat tables that are not a chat's log (accounts, chats, memberships,
/// read cursors, server heartbeats; the log is `ChatLog`) over any `RingStorage`. Every
/// request is QUORUM, so a read sees every acknowledged write, whichever chat server made it.
/// Storage failures come out as `ChatError.storageUnavailable`; a write that failed may or may not
/// have been applied (retrying is safe: every write here is idempotent).
struct ChatCatalog: Sendable {
    let storage: any RingStorage
    let clock: any ChatClock
    var consistency: ConsistencyLevel = .quorum

    init(storage: any RingStorage, clock: any ChatClock) {
        self.storage = storage
        self.clock = clock
    }

    // MARK: Plumbing

    func write(_ mutation: Mutation) async throws {
        do {
            try await storage.write(mutation, consistency: consistency)
        } catch {
            throw ChatError(
                .storageUnavailable,
                "the ring did not acknowledge a write (\(error)); nothing is promised stored, retry")
        }
    }

    func read(_ query: SliceQuery) async throws -> [LiveRow] {
        try await readPage(query).rows
    }

    /// One page of `query` and where to resume: a cursor when the ring stopped at the query's
    /// row or byte limit (a page in bytes can be shorter than the row limit and still go on).
    func readPage(_ query: SliceQuery) async throws -> (rows: [LiveRow], cursor: [UInt8]?) {
        do {
            let answer = try await storage.read(query, consistency: consistency)
            return (answer.liveRows(nowSeconds: clock.nowSeconds()), answer.cursor)
        } catch {
            throw ChatError(.storageUnavailable, "the ring could not answer a read (\(error)); retry")
        }
    }

    private func row(_ w: RowWrite, writeTime: Int64? = nil) -> Mutation {
        w.mutation(writeTime: writeTime ?? clock.nowMicros(), nowSeconds: clock.nowSeconds())
    }

    private func exactly(_ table: TableID, _ partition: [UInt8], _ clustering: ClusteringKey) -> SliceQuery {
        SliceQuery(
            table: table, partitionKey: partition, lower: ClusteringBound(clustering, inclusive: true),
            upper: ClusteringBound(clustering, inclusive: true), limit: 1)
    }

    // MARK: Users

    /// Writes a user row. Cells carry the inverted creation time as their write timestamp, so when
    /// two servers register the same handle at once the earlier registration wins on every replica
    /// (see `AccountService.register`).
    func putUser(_ user: UserRecord) async throws {
        try await write(
            row(
                RowWrite(
                    table: ChatTables.users, partitionKey: ChatTables.key(user: user.userId),
                    clustering: ChatTables.singleRow,
                    cells: [
                        (ChatTables.UserColumn.passwordHash, Array(user.passwordHash.utf8)),
                        (ChatTables.UserColumn.createdAt, .int64(user.createdAt)),
                    ]),
                writeTime: Int64.max / 2 - user.createdAt))
    }

    func user(_ userId: String) async throws -> UserRecord? {
        let rows = try await read(
            exactly(ChatTables.users, ChatTables.key(user: userId), ClusteringKey(encoded: ChatTables.singleRow)))
        guard let r = rows.first, let hash = r.string(ChatTables.UserColumn.passwordHash) else { return nil }
        return UserRecord(userId: userId, passwordHash: hash, createdAt: r.int64(ChatTables.UserColumn.createdAt) ?? 0)
    }

    /// The registration row and the credentials row in one read.
    func credentials(_ userId: String) async throws -> UserCredentials? {
        let rows = try await read(
            SliceQuery(table: ChatTables.users, partitionKey: ChatTables.key(user: userId), limit: 2))
        guard let r = rows.first(where: { $0.firstInt64 == 0 }),
            let hash = r.string(ChatTables.UserColumn.passwordHash)
        else { return nil }
        let registration = UserRecord(
            userId: userId, passwordHash: hash, createdAt: r.int64(ChatTables.UserColumn.createdAt) ?? 0)
        var credentials = UserCredentials(registration: registration, passwordHash: hash, generation: 0)
        if let c = rows.first(where: { $0.firstInt64 == 1 }),
            c.int64(ChatTables.UserColumn.createdAt) == registration.createdAt,
            let current = c.string(ChatTables.UserColumn.passwordHash)
        {
            credentials.passwordHash = current
            credentials.generation = c.int64(ChatTables.UserColumn.generation) ?? 0
        }
        return credentials
    }

    /// Writes the credentials row of `credentials.registration` (a password change, a sign-out
    /// everywhere). Its write time is now: the newest change wins.
    func putCredentials(_ credentials: UserCredentials) async throws {
        try await write(
            row(
                RowWrite(
                    table: ChatTables.users, partitionKey: ChatTables.key(user: credentials.registration.userId),
                    clustering: ChatTables.credentialsRow,
                    cells: [
                        (ChatTables.UserColumn.passwordHash, Array(credentials.passwordHash.utf8)),
                        (ChatTables.UserColumn.createdAt, .int64(credentials.registration.createdAt)),
                        (ChatTables.UserColumn.generation, .int64(credentials.generation)),
                    ])))
    }

    // MARK: Chats and members

    func putChat(_ chat: ChatRecord) async throws {
        try await write(
            row(
                RowWrite(
                    table: ChatTables.chats, partitionKey: ChatTables.key(chat: chat.chatId),
                    clustering: ChatTables.singleRow,
                    cells: [
                        (ChatTables.ChatColumn.kind, Array(chat.kind.rawValue.utf8)),
                        (ChatTables.ChatColumn.title, Array(chat.title.utf8)),
                        (ChatTables.ChatColumn.createdBy, Array(chat.createdBy.utf8)),
                        (ChatTables.ChatColumn.createdAt, .int64(chat.createdAt)),
                    ]),
                writeTime: chat.createdAt))
    }

    func chat(_ chatId: Int64) async throws -> ChatRecord? {
        let rows = try await read(
            exactly(ChatTables.chats, ChatTables.key(chat: chatId), ClusteringKey(encoded: ChatTables.singleRow)))
        guard let r = rows.first, let kind = r.string(ChatTables.ChatColumn.kind).flatMap(ChatKind.init(rawValue:))
        else { return nil }
        return ChatRecord(
            chatId: chatId, kind: kind, title: r.string(ChatTables.ChatColumn.title) ?? "",
            createdBy: r.string(ChatTables.ChatColumn.createdBy) ?? "",
            createdAt: r.int64(ChatTables.ChatColumn.createdAt) ?? 0)
    }

    /// Adds `userId` to the chat: the `chat_members` row (fan-out) and the `user_chats` row (their
    /// chat list), written in parallel. `title` is what the user's list shows.
    func addMember(chat: ChatRecord, userId: String, role: MemberRole, title: String, joinedAt: Int64) async throws {
        let member = row(
            RowWrite(
                table: ChatTables.chatMembers, partitionKey: ChatTables.key(chat: chat.chatId),
                clustering: ClusteringKey([.bytes(Array(userId.utf8))]).bytes,
                cells: [
                    (ChatTables.MemberColumn.role, Array(role.rawValue.utf8)),
                    (ChatTables.MemberColumn.joinedAt, .int64(joinedAt)),
                ]))
        let entry = row(
            RowWrite(
                table: ChatTables.userChats, partitionKey: ChatTables.key(user: userId),
                clustering: ClusteringKey([.int64(chat.chatId)]).bytes,
                cells: [
                    (ChatTables.UserChatColumn.kind, Array(chat.kind.rawValue.utf8)),
                    (ChatTables.UserChatColumn.title, Array(title.utf8)),
                    (ChatTables.UserChatColumn.joinedAt, .int64(joinedAt)),
                ]))
        async let a: Void = write(member)
        async let b: Void = write(entry)
        _ = try await (a, b)
    }

    /// Row tombstones for both membership rows.
    func removeMember(chatId: Int64, userId: String) async throws {
        let now = clock.nowMicros()
        let seconds = clock.nowSeconds()
        let member = RowWrite.delete(
            table: ChatTables.chatMembers, partitionKey: ChatTables.key(chat: chatId),
            clustering: ClusteringKey([.bytes(Array(userId.utf8))]).bytes, writeTime: now, nowSeconds: seconds)
        let entry = RowWrite.delete(
            table: ChatTables.userChats, partitionKey: ChatTables.key(user: userId),
            clustering: ClusteringKey([.int64(chatId)]).bytes, writeTime: now, nowSeconds: seconds)
        async let a: Void = write(member)
        async let b: Void = write(entry)
        _ = try await (a, b)
    }

    /// Every member of a chat (one partition; at most a few more than 100 rows).
    func members(_ chatId: Int64) async throws -> [MemberRecord] {
        let rows = try await read(
            SliceQuery(table: ChatTables.chatMembers, partitionKey: ChatTables.key(chat: chatId), limit: 1000))
        return rows.compactMap { r in
            guard let id = r.bytesComponent(0) else { return nil }
            return MemberRecord(
                userId: id, role: r.string(ChatTables.MemberColumn.role).flatMap(MemberRole.init(rawValue:)) ?? .member,
                joinedAt: r.int64(ChatTables.MemberColumn.joinedAt) ?? 0)
        }
    }

    /// A user's chats (one partition), in chat id order.
    func userChats(_ userId: String) async throws -> [UserChatRecord] {
        let rows = try await read(
            SliceQuery(table: ChatTables.userChats, partitionKey: ChatTables.key(user: userId), limit: 100_000))
        return rows.compactMap { r in
            guard let id = r.firstInt64 else { return nil }
            return UserChatRecord(
                chatId: id, kind: r.string(ChatTables.UserChatColumn.kind).flatMap(ChatKind.init(rawValue:)) ?? .group,
                title: r.string(ChatTables.UserChatColumn.title) ?? "",
                joinedAt: r.int64(ChatTables.UserChatColumn.joinedAt) ?? 0)
        }
    }

    // MARK: Read cursors

    /// Moves a member's read cursor. The write time is the cursor's own seq, so the furthest cursor
    /// wins on every replica whatever order the writes arrive in — a cursor never moves back.
    func putReadCursor(chatId: Int64, userId: String, cursor: ReadCursor) async throws {
        try await write(
            row(
                RowWrite(
                    table: ChatTables.readCursors, partitionKey: ChatTables.key(chat: chatId),
                    clustering: ClusteringKey([.bytes(Array(userId.utf8))]).bytes,
                    cells: [(ChatTables.ReadCursorColumn.readSeq, .int64(cursor.seq))]),
                writeTime: cursor.seq))
    }

    /// Every member's read cursor in a chat (one partition).
    func readCursors(chatId: Int64) async throws -> [String: ReadCursor] {
        let rows = try await read(
            SliceQuery(table: ChatTables.readCursors, partitionKey: ChatTables.key(chat: chatId), limit: 1000))
        var out: [String: ReadCursor] = [:]
        for r in rows {
            if let user = r.bytesComponent(0), let seq = r.int64(ChatTables.ReadCursorColumn.readSeq) {
                out[user] = ReadCursor(seq: seq)
            }
        }
        return out
    }

    func readCursor(chatId: Int64, userId: String) async throws -> ReadCursor? {
        let rows = try await read(
            exactly(ChatTables.readCursors, ChatTables.key(chat: chatId), ClusteringKey([.bytes(Array(userId.utf8))])))
        guard let r = rows.first, let seq = r.int64(ChatTables.ReadCursorColumn.readSeq) else { return nil }
        return ReadCursor(seq: seq)
    }

    // MARK: Blocks

    /// `userId` blocks `blocked` (idempotent).
    func putBlock(userId: String, blocked: String) async throws {
        try await write(
            row(
                RowWrite(
                    table: ChatTables.blocks, partitionKey: ChatTables.key(user: userId),
                    clustering: ClusteringKey([.bytes(Array(blocked.utf8))]).bytes,
                    cells: [(ChatTables.BlockColumn.since, .int64(clock.nowMicros()))])))
    }

    func removeBlock(userId: String, blocked: String) async throws {
        try await write(
            RowWrite.delete(
                table: ChatTables.blocks, partitionKey: ChatTables.key(user: userId),
                clustering: ClusteringKey([.bytes(Array(blocked.utf8))]).bytes,
                writeTime: clock.nowMicros(), nowSeconds: clock.nowSeconds()))
    }

    /// Whether `userId` has blocked `other`: one row read.
    func hasBlocked(_ userId: String, _ other: String) async throws -> Bool {
        try await !read(
            exactly(ChatTables.blocks, ChatTables.key(user: userId), ClusteringKey([.bytes(Array(other.utf8))]))
        ).isEmpty
    }

    /// Everyone `userId` has blocked, oldest block first is not promised: sorted by handle.
    func blocks(of userId: String) async throws -> [String] {
        try await read(SliceQuery(table: ChatTables.blocks, partitionKey: ChatTables.key(user: userId), limit: 10_000))
            .compactMap { $0.bytesComponent(0) }
    }

    // MARK: Chat servers

    /// A server's heartbeat: its row in `chat.servers` with a fresh `beat` value (the others count
    /// it live while the value changes), expiring after `ttlSeconds` unless rewritten.
    func putServer(id: String, address: String, peerAddress: String, beat: Int64, ttlSeconds: Int32) async throws {
        try await write(
            row(
                RowWrite(
                    table: ChatTables.servers, partitionKey: ChatTables.serversPartition,
                    clustering: ClusteringKey([.bytes(Array(id.utf8))]).bytes,
                    cells: [
                        (ChatTables.ServerColumn.address, Array(address.utf8)),
                        (ChatTables.ServerColumn.peerAddress, Array(peerAddress.utf8)),
                        (ChatTables.ServerColumn.beat, [UInt8].int64(beat)),
                    ], ttl: ttlSeconds)))
    }

    /// Deletes a server's heartbeat (graceful shutdown: the others drop it at once).
    func removeServer(id: String) async throws {
        try await write(
            RowWrite.delete(
                table: ChatTables.servers, partitionKey: ChatTables.serversPartition,
                clustering: ClusteringKey([.bytes(Array(id.utf8))]).bytes,
                writeTime: clock.nowMicros(), nowSeconds: clock.nowSeconds()))
    }

    /// Servers' rows not yet expired: id → (public address, peer-link address, heartbeat value).
    /// Which of them are live is `PeerLiveness`'s call.
    func servers() async throws -> [String: ServerAddresses] {
        let rows = try await read(
            SliceQuery(table: ChatTables.servers, partitionKey: ChatTables.serversPartition, limit: 10_000))
        var out: [String: ServerAddresses] = [:]
        for r in rows {
            if let id = r.bytesComponent(0), let a = r.string(ChatTables.ServerColumn.address),
                let p = r.string(ChatTables.ServerColumn.peerAddress)
            {
                out[id] = ServerAddresses(public: a, peer: p, beat: r.int64(ChatTables.ServerColumn.beat) ?? 0)
            }
        }
        return out
    }
}

/// Where a chat server is reached: by devices, and by the other servers' peer links.
struct ServerAddresses: Hashable, Sendable {
    var `public`: String
    var peer: String
    /// The heartbeat value of the row (0 in a row written before heartbeats carried one).
    var beat: Int64 = 0
}
