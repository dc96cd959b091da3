import ConfabEngine
import Foundation
import Logging

/// The chat logic: chats and membership, sends, history, catch-up, receipts, typing. Pure of
/// transport — the HTTP and WebSocket shells call it with an authenticated user id — and of
/// storage (`ChatCatalog` over any `RingStorage`) and delivery (`Delivery`), so tests run it over an
/// in-memory ring with a manual clock.
final class ChatService: Sendable {
    struct Limits: Sendable {
        /// Members of a group, its creator included.
        var maxGroupMembers = 100
        /// Unicode scalars of a message's text.
        var maxMessageScalars = 100_000
        var maxTitleScalars = 200
        /// Unread counts stop at this many (clients show "99+").
        var unreadCap = 100
        var maxHistoryLimit = 200
        var maxSyncLimit = 1000
        /// A sync answer stops adding messages past this many bytes of JSON (it always holds one
        /// message when any is due). A device's queue holds 4 MiB (`outboxMaxBytes`): 500 messages
        /// of up to 100,000 scalars each would pass it, and the device would be closed (4008) on
        /// every catch-up, never getting them. A message is at most ~600 KB, so one always fits.
        var maxSyncBytes = 1 << 20
        /// A history page stops at about this much JSON too (at least one message; `more` says
        /// it was cut): 200 messages of 100,000 scalars would be ~120 MB for a phone to take in
        /// one answer.
        var maxHistoryBytes = 1 << 20
        /// Reads a chat list makes at once (4 per chat).
        var listConcurrency = 8
        /// Read receipts a user may send, per second and in a burst (issue 12): each one is a
        /// members read, a write and an event to up to 100 members.
        var receiptsPerSecond = 10.0
        var receiptBurst = 50.0
        /// Catch-ups a user may start per second on a server, and in a burst (`SyncGate`): each
        /// costs 1 + N reads for a user in N chats. Over the budget a sync waits, not fails.
        var syncsPerSecond = 5.0
        var syncBurst = 20.0
    }

    let store: ChatCatalog
    let log: ChatLog
    let delivery: any Delivery
    let limiter: RateLimiter
    /// Read receipts per user (`Limits.receiptsPerSecond`).
    let receiptLimiter: RateLimiter
    let typingGate: TypingGate
    /// Keyed ids of direct chats (`DirectChatIds`).
    let directChatIds: DirectChatIds
    /// A user's syncs one at a time, paced (`Limits.syncsPerSecond`).
    let syncGate: SyncGate
    /// The ordering point of the chats this server owns.
    let sequencer: ChatSequencer
    /// Sends into chats other servers own go there; nil: every chat is ordered here.
    let router: (any ChatRouting)?
    let cache: MembersCache
    let clock: any ChatClock
    let limits: Limits
    /// Pauses between attempts to tell an owner server of a membership change (injected for tests).
    let retryPause: @Sendable (Duration) async throws -> Void

    init(
        store: ChatCatalog, delivery: any Delivery, limiter: RateLimiter, clock: any ChatClock,
        limits: Limits = Limits(),
        serverId: String = "local", router: (any ChatRouting)? = nil, logger: Logger = Logger(label: "confab.chat"),
        syncSleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        directChatIds: DirectChatIds = DirectChatIds(secret: Array("confab tests: one deployment".utf8)),
        lease: (any OrderingLease)? = nil,
        epochStep: @escaping @Sendable () -> Int64 = { Int64.random(in: 0..<256) }
    ) {
        self.directChatIds = directChatIds
        self.store = store
        self.log = ChatLog(store: store)
        self.delivery = delivery
        self.limiter = limiter
        self.receiptLimiter = RateLimiter(
            ratePerSecond: limits.receiptsPerSecond, burst: limits.receiptBurst, clock: clock)
        self.typingGate = TypingGate(clock: clock)
        self.syncGate = SyncGate(
            limiter: RateLimiter(ratePerSecond: limits.syncsPerSecond, burst: limits.syncBurst, clock: clock),
            sleep: syncSleep)
        self.sequencer = ChatSequencer(
            serverId: serverId,
            store: ChatCatalog(storage: SendPathRingStorage(inner: store.storage), clock: store.clock),
            delivery: delivery, stamper: MessageStamper(clock: clock),
            logger: logger, lease: lease, epochStep: epochStep)
        self.router = router
        self.cache = MembersCache(clock: clock)
        self.clock = clock
        self.limits = limits
        self.retryPause = syncSleep
    }

    // MARK: Membership checks

    /// The chat's members if `userId` is one of them; `not_a_member` otherwise, whether or not
    /// the chat exists (`ChatError.notMember`).
    func requireMember(_ userId: String, of chatId: Int64) async throws -> [MemberRecord] {
        let members = try await store.members(chatId)
        cache.setMembers(chatId, Set(members.map(\.userId)))
        guard members.contains(where: { $0.userId == userId }) else { throw ChatError.notMember(of: chatId) }
        return members
    }

    /// Like `requireMember` but may answer from the cache (typing only).
    func cachedMembers(_ userId: String, of chatId: Int64) async throws -> Set<String> {
        if let m = cache.members(chatId), m.contains(userId) { return m }
        return Set(try await requireMember(userId, of: chatId).map(\.userId))
    }

    // MARK: Chats

    /// The direct chat of `userId` and `other`: the same chat every time, from any server, even
    /// when both ask at once (its id is derived from the two ids, keyed with the deployment's
    /// secret — `DirectChatIds` — and every write is idempotent).
    func directChat(_ userId: String, with other: String) async throws -> ChatSummary {
        let other = other.lowercased()
        guard other != userId else { throw ChatError(.badRequest, "a direct chat needs another user") }
        guard (try? AccountService.userId(forHandle: other)) != nil, try await store.user(other) != nil else {
            throw ChatError(.unknownUser, "no user \"\(other.prefix(40))\"")
        }
        let chatId = directChatIds.id(userId, other)
        let members = try await store.members(chatId)
        if Set(members.map(\.userId)).isSuperset(of: [userId, other]), let chat = try await store.chat(chatId) {
            return try await summary(of: chat, members: members, for: userId)
        }
        // A direct chat made under another id (before ids were keyed, or under an earlier secret)
        // is found in the user's chat list, so the pair keeps its one chat and its history.
        if let earlier = try await store.userChats(userId).first(where: { $0.kind == .direct && $0.title == other }),
            earlier.chatId != chatId
        {
            let earlierMembers = try await store.members(earlier.chatId)
            if Set(earlierMembers.map(\.userId)).isSuperset(of: [userId, other]),
                let chat = try await store.chat(earlier.chatId)
            {
                return try await summary(of: chat, members: earlierMembers, for: userId)
            }
        }
        try await requireNotBlocked(by: [other], adder: userId)
        let now = clock.nowMicros()
        let chat = ChatRecord(chatId: chatId, kind: .direct, title: "", createdBy: userId, createdAt: now)
        try await store.putChat(chat)
        async let a: Void = store.addMember(chat: chat, userId: userId, role: .member, title: other, joinedAt: now)
        async let b: Void = store.addMember(chat: chat, userId: other, role: .member, title: userId, joinedAt: now)
        _ = try await (a, b)
        cache.invalidate(chatId: chatId, users: [userId, other])
        let all = [
            MemberRecord(userId: userId, role: .member, joinedAt: now),
            MemberRecord(userId: other, role: .member, joinedAt: now),
        ]
        await announce(chat, members: all)
        return try await summary(of: chat, members: all, for: userId)
    }

    /// A new group of `creator` and `members` (their ids; duplicates and the creator ignored).
    func createGroup(_ creator: String, title: String, members requested: [String]) async throws -> ChatSummary {
        let title = title.trimmingCharacters(in: .whitespacesAndNewlines)
        guard title.unicodeScalars.count <= limits.maxTitleScalars else {
            throw ChatError(.badRequest, "a title is at most \(limits.maxTitleScalars) characters")
        }
        var others: [String] = []
        for m in requested.map({ $0.lowercased() }) where m != creator && !others.contains(m) { others.append(m) }
        guard others.count + 1 <= limits.maxGroupMembers else {
            throw ChatError(
                .groupFull,
                "a group holds at most \(limits.maxGroupMembers) members including you (asked for \(others.count + 1))")
        }
        try await requireUsersExist(others)
        try await requireNotBlocked(by: others, adder: creator)
        let now = clock.nowMicros()
        var chatId: Int64 = 0
        while chatId == 0 { chatId = Int64.random(in: 1...Int64.max) }
        let chat = ChatRecord(chatId: chatId, kind: .group, title: title, createdBy: creator, createdAt: now)
        try await store.putChat(chat)
        let all =
            [MemberRecord(userId: creator, role: .owner, joinedAt: now)]
            + others.map { MemberRecord(userId: $0, role: .member, joinedAt: now) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for m in all {
                group.addTask {
                    try await self.store.addMember(
                        chat: chat, userId: m.userId, role: m.role, title: title, joinedAt: now)
                }
            }
            try await group.waitForAll()
        }
        cache.invalidate(chatId: chatId, users: all.map(\.userId))
        await announce(chat, members: all)
        return try await summary(of: chat, members: all, for: creator)
    }

    func requireUsersExist(_ ids: [String]) async throws {
        let missing = try await withThrowingTaskGroup(of: String?.self) { group in
            for id in ids {
                group.addTask {
                    guard (try? AccountService.userId(forHandle: id)) != nil else { return id }
                    return try await self.store.user(id) == nil ? id : nil
                }
            }
            var out: [String] = []
            for try await m in group { if let m { out.append(m) } }
            return out.sorted()
        }
        guard missing.isEmpty else {
            throw ChatError(
                .unknownUser, "no user \(missing.prefix(5).map { "\"\($0.prefix(40))\"" }.joined(separator: ", "))")
        }
    }

    /// Adds `newMember` to a group `userId` belongs to. Adding someone already there is a no-op.
    func addMember(_ userId: String, chatId: Int64, newMember: String) async throws -> ChatSummary {
        let newMember = newMember.lowercased()
        var members = try await requireMember(userId, of: chatId)
        guard let chat = try await store.chat(chatId) else { throw ChatError.notMember(of: chatId) }
        guard chat.kind == .group else { throw ChatError(.notAGroup, "members can only be added to group chats") }
        if members.contains(where: { $0.userId == newMember }) {
            return try await summary(of: chat, members: members, for: userId)
        }
        guard members.count < limits.maxGroupMembers else {
            throw ChatError(.groupFull, "the group already has \(members.count) members, the most a group can have")
        }
        try await requireUsersExist([newMember])
        try await requireNotBlocked(by: [newMember], adder: userId)
        let now = clock.nowMicros()
        try await store.addMember(chat: chat, userId: newMember, role: .member, title: chat.title, joinedAt: now)
        members.append(MemberRecord(userId: newMember, role: .member, joinedAt: now))
        cache.invalidate(chatId: chatId, users: members.map(\.userId))
        await membersChanged(chatId)
        await announce(chat, members: members)
        return try await summary(of: chat, members: members, for: userId)
    }

    /// Removes `target` from a group. Members may remove themselves (leave); the owner may
    /// remove anyone.
    func removeMember(_ userId: String, chatId: Int64, target: String) async throws {
        let target = target.lowercased()
        let members = try await requireMember(userId, of: chatId)
        guard let chat = try await store.chat(chatId) else { throw ChatError.notMember(of: chatId) }
        guard chat.kind == .group else {
            throw ChatError(.notAGroup, "nobody can leave or be removed from a direct chat")
        }
        guard members.contains(where: { $0.userId == target }) else {
            throw ChatError(.notAMember, "\(target.prefix(40)) is not a member of chat \(chatId)")
        }
        if target != userId, members.first(where: { $0.userId == userId })?.role != .owner {
            throw ChatError(.notAMember, "only the group's owner removes other members; you can leave it")
        }
        try await store.removeMember(chatId: chatId, userId: target)
        let remaining = members.filter { $0.userId != target }
        cache.invalidate(chatId: chatId, users: members.map(\.userId))
        await membersChanged(chatId)
        await delivery.deliver(.chatRemoved(chatId: chatId), to: [target], excludingDevice: nil)
        if !remaining.isEmpty { await announce(chat, members: remaining) }
    }

    /// Has the chat's owner — this server, and the owner in this server's view when that is
    /// another — read the chat's members again before its next batch (docs/chat_ordering.md,
    /// "Members"). The change itself is already stored, so it is not undone or refused when the
    /// owner cannot be told now: it is told again, with backoff, until it answers — the owner's
    /// cached members are current only through these calls while the live set stays the same.
    func membersChanged(_ chatId: Int64) async {
        sequencer.membersChanged(chatId: chatId)
        guard let router else { return }
        do {
            try await router.membersChanged(chatId: chatId)
        } catch {
            sequencer.logger.warning(
                "the chat's owner server was not told of a membership change; telling it again until it answers",
                metadata: ["chat": "\(chatId)", "error": "\(error)"])
            let logger = sequencer.logger
            let pause = retryPause
            Task {
                await Self.keepTelling(router, chatId: chatId, logger: logger, pause: pause)
            }
        }
    }

    /// Retries `membersChanged` on the owner (in this server's view at each attempt: when the
    /// owner changes, the new one reads the members when it opens the chat) until it answers;
    /// pauses double from 100 ms to 5 s. Gives up after `maxAttempts` (about 10 minutes), logging
    /// an error: the owner then reads the members at the next change of the live set.
    static func keepTelling(
        _ router: any ChatRouting, chatId: Int64, logger: Logger, maxAttempts: Int = 130,
        pause: @escaping @Sendable (Duration) async throws -> Void
    ) async {
        var delay = Duration.milliseconds(100)
        for attempt in 1...maxAttempts {
            do { try await pause(delay) } catch { return }
            do {
                try await router.membersChanged(chatId: chatId)
                logger.info(
                    "the chat's owner server was told of a membership change",
                    metadata: ["chat": "\(chatId)", "attempts": "\(attempt + 1)"])
                return
            } catch {
                delay = min(delay * 2, .seconds(5))
            }
        }
        logger.error(
            "the chat's owner server could not be told of a membership change; it reads the members again when the live set of chat servers next changes",
            metadata: ["chat": "\(chatId)"])
    }

    /// Tells every member's devices about the chat as it is now (`chat` event; unread 0 and no
    /// last message: devices merge it into what they have).
    func announce(_ chat: ChatRecord, members: [MemberRecord]) async {
        let ids = members.map(\.userId).sorted()
        for m in ids {
            let summary = ChatSummary(
                chatId: chat.chatId, kind: chat.kind, title: title(of: chat, for: m, members: ids), members: ids,
                createdBy: chat.createdBy)
            await delivery.deliver(.chat(summary), to: [m], excludingDevice: nil)
        }
    }

    func title(of chat: ChatRecord, for viewer: String, members: [String]) -> String {
        if chat.kind == .direct { return members.first { $0 != viewer } ?? viewer }
        return chat.title.isEmpty ? members.joined(separator: ", ") : chat.title
    }

    /// One chat as `viewer` sees it: members, last message, unread count.
    func summary(of chat: ChatRecord, members: [MemberRecord], for viewer: String) async throws -> ChatSummary {
        let ids = members.map(\.userId).sorted()
        async let last = log.messages(chatId: chat.chatId, before: nil, limit: 1)
        async let unread = unreadState(chatId: chat.chatId, for: viewer)
        let (lastMessage, (count, cursor, readers)) = try await (last.first, unread)
        return ChatSummary(
            chatId: chat.chatId, kind: chat.kind, title: title(of: chat, for: viewer, members: ids), members: ids,
            createdBy: chat.createdBy, lastMessage: lastMessage, unread: count, readCursor: cursor,
            readers: readers.filter { ids.contains($0.key) })
    }

    /// The viewer's unread count (others' messages after their read cursor, up to the cap), their
    /// cursor, and the other members' cursors (so a fresh page shows "seen" on what they read).
    func unreadState(chatId: Int64, for viewer: String) async throws -> (Int, ReadCursor?, [String: Int64]) {
        var all = try await store.readCursors(chatId: chatId)
        let cursor = all.removeValue(forKey: viewer)
        let after = try await log.messages(chatId: chatId, after: cursor?.seq ?? 0, limit: limits.unreadCap)
        return (after.filter { $0.sender != viewer }.count, cursor, all.mapValues(\.seq))
    }

    /// A chat of the user's, as in the chat list.
    ///
    /// "No such chat" and "not yours" get the same answer after the same reads: a different
    /// status (it was 403 vs 404) lets anyone test whether two people talk, since a direct chat's
    /// id can be computed from the two handles.
    func chat(_ userId: String, chatId: Int64) async throws -> ChatSummary {
        async let record = store.chat(chatId)
        let members = try await store.members(chatId)
        let found = try await record
        guard let chat = found, members.contains(where: { $0.userId == userId }) else {
            throw ChatError(.notFound, "no such chat among yours; check the id, or ask a member to add you")
        }
        cache.setMembers(chatId, Set(members.map(\.userId)))
        return try await summary(of: chat, members: members, for: userId)
    }

    /// The user's chats, most recent activity first (last message, else when they joined). Four
    /// reads per chat, a few chats at a time: fine for hundreds of chats (docs/chat_data.md).
    func chats(for userId: String) async throws -> [ChatSummary] {
        let entries = try await store.userChats(userId)
        var out: [ChatSummary] = []
        try await withThrowingTaskGroup(of: ChatSummary?.self) { group in
            var next = 0
            func add() {
                guard next < entries.count else { return }
                let e = entries[next]
                next += 1
                group.addTask {
                    let members = try await self.store.members(e.chatId)
                    guard members.contains(where: { $0.userId == userId }) else { return nil }
                    let chat =
                        try await self.store.chat(e.chatId)
                        ?? ChatRecord(
                            chatId: e.chatId, kind: e.kind, title: e.title, createdBy: "", createdAt: e.joinedAt)
                    return try await self.summary(of: chat, members: members, for: userId)
                }
            }
            for _ in 0..<limits.listConcurrency { add() }
            for try await s in group {
                if let s { out.append(s) }
                add()
            }
        }
        let joined = Dictionary(entries.map { ($0.chatId, $0.joinedAt) }, uniquingKeysWith: max)
        func activity(_ s: ChatSummary) -> Int64 { s.lastMessage?.ts ?? joined[s.chatId] ?? 0 }
        return out.sorted { (activity($0), $0.chatId) > (activity($1), $1.chatId) }
    }

    /// Everyone the user shares a chat with (presence audience), cached briefly.
    func contacts(of userId: String) async throws -> Set<String> {
        if let c = cache.contacts(userId) { return c }
        let entries = try await store.userChats(userId)
        var out: Set<String> = []
        try await withThrowingTaskGroup(of: Set<String>.self) { group in
            for e in entries.prefix(1000) {
                group.addTask {
                    if let m = self.cache.members(e.chatId) { return m }
                    let m = Set(try await self.store.members(e.chatId).map(\.userId))
                    self.cache.setMembers(e.chatId, m)
                    return m
                }
            }
            for try await m in group { out.formUnion(m) }
        }
        out.remove(userId)
        cache.setContacts(userId, out)
        return out
    }
}
