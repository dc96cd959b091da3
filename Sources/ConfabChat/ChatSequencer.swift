import ConfabEngine
import DequeModule
import Foundation
import Logging
import Synchronization

/// The ordering point of the chats this server owns (docs/chat_ordering.md): every send into a
/// chat passes through here, on the chat's owner server, and gets the chat's next `seq`.
///
/// Per chat, sends queue while one batch is written; the next batch takes everything queued, so
/// a busy chat costs one ring write per batch, not per send. A batch is acknowledged only after
///
/// 1. its mutation (messages + idempotency rows, atomic per replica) is on a QUORUM, and
/// 2. either this server's ownership lease still holds for the period the chat was opened in
///    (`OrderingLease`: then no other server can have opened the chat, and no read is needed), or
///    a QUORUM read of the chat's header (the fence) still names this server's epoch — if another
///    server has opened a newer epoch since (an ownership change), nothing of the batch is
///    acknowledged: its messages are either seen by the new owner's opening read (and kept) or lie
///    in the tail the new owner tombstones, and the devices retry with `retry: true`.
///
/// Guarantee: one batch in flight per chat, and batch k+1 is written only after batch k is on a
/// QUORUM, so every seq below a readable one is readable — a per-chat cursor never skips. Acks,
/// and live `message` events (queued with `Delivery` in seq order), follow the fence read.
final class ChatSequencer: Sendable {
    struct Send: Sendable, Hashable {
        var sender: String
        var clientId: String
        var text: String
        /// The device sent this clientId before without getting an ack: look it up in the ring.
        var retry: Bool
    }

    private struct Key: Hashable, Sendable {
        var sender: String
        var clientId: String
    }

    private struct Pending: Sendable {
        var send: Send
        var waiters: [CheckedContinuation<SendAck, any Error>]
    }

    /// What this server knows of a chat it has opened: its epoch, where the log ends, and the
    /// tombstone still to be written with the first batch of the epoch.
    private struct Open: Sendable {
        var epoch: Int64
        var last: Int64
        var next: Int64
        /// The newest messages the opening read saw (to recognise their clientIds without a read).
        var tail: [MessageRecord] = []
        /// What the chat was opened (or last fenced) under; nil: the next batch is fenced.
        var leaseStamp: LeaseStamp?
    }

    private struct Recent: Sendable {
        var ack: SendAck
        /// Of the text (the text itself may be 100,000 characters): a resend with other text is
        /// refused at once.
        var textHash: Int
        /// Acknowledged by this server after a fence (or under the lease): answered from memory.
        /// A message only seen while opening is not, until a fenced batch answers it: a newer
        /// opening may yet close it (docs/chat_ordering.md § Late tombstones).
        var safe: Bool
    }

    /// The chat's members as this owner last read them. Sends check their sender against it
    /// instead of reading `chat.chat_members` for every batch; a sender missing from it, a change
    /// (`membersChanged`), or a change of the live set since it was read makes the next batch read
    /// the members again (docs/chat_ordering.md, "Members").
    private struct Members: Sendable {
        var ids: Set<String>
        /// The live-set view it was read under (nil: no directory, one server), and whether that
        /// view had settled when the read began.
        var view: UInt64?
        var settled: Bool
    }

    private struct Lane: Sendable {
        var open: Open?
        var members: Members?
        /// Bumped by every `membersChanged`: a members read that started before a removal is not
        /// cached after it.
        var membersVersion: UInt64 = 0
        var queue: [Key: Pending] = [:]
        var order: [Key] = []
        var flying: [Key: Pending] = [:]
        var running = false
        var recent: [Key: Recent] = [:]
        var recentOrder: Deque<Key> = []
    }

    /// Runs `body` on the chat's lane in place, or answers nil when the chat has none.
    ///
    /// Why in place: copying a lane out of the map and storing it back (`var lane = lanes[id]`,
    /// then `lanes[id] = lane`) left two references to each of its collections while `body` ran,
    /// so the first change to one copied it whole — the chat's remembered clientIds (up to
    /// `recentPerChat`, 1,024) on every batch. `perf` of `confab-bench chat` at 2,000 sends/s showed
    /// that copy (`initializeWithCopy for ChatSequencer.Recent`) at 3% of each chat server.
    private static func withLane<R>(_ lanes: inout [Int64: Lane], _ chatId: Int64, _ body: (inout Lane) -> R) -> R? {
        guard let i = lanes.index(forKey: chatId) else { return nil }
        return body(&lanes.values[i])
    }

    let serverId: String
    let log: ChatLog
    let store: ChatCatalog
    let delivery: any Delivery
    let stamper: MessageStamper
    let logger: Logger
    let maxBatch: Int
    /// A batch stops taking sends once their texts reach this many UTF-8 bytes (it always takes
    /// one): a batch is one ring request, and 256 texts of 100,000 characters would not fit the
    /// ring's 64 MiB frame, so the batch would fail every time it was retried.
    let maxBatchBytes: Int
    let recentPerChat: Int
    /// Lets a batch skip the fence read; nil: every batch is fenced and chats open at once.
    let lease: (any OrderingLease)?
    private let lanes = Mutex<[Int64: Lane]>([:])
    /// Ring reads made to check members (for tests and metrics: a steady-state send makes none).
    private let memberReads = Mutex<Int>(0)
    private let fenceReadCount = Mutex<Int>(0)
    /// The random part of a new epoch (`ChatLog.nextEpoch`), 0..<256; tests fix it to make two
    /// openers' draws collide.
    let epochStep: @Sendable () -> Int64

    init(
        serverId: String, store: ChatCatalog, delivery: any Delivery, stamper: MessageStamper, logger: Logger,
        maxBatch: Int = 256, maxBatchBytes: Int = 8 << 20, recentPerChat: Int = 1024,
        lease: (any OrderingLease)? = nil,
        epochStep: @escaping @Sendable () -> Int64 = { Int64.random(in: 0..<256) }
    ) {
        self.lease = lease
        self.epochStep = epochStep
        self.serverId = serverId
        self.store = store
        self.log = ChatLog(store: store)
        self.delivery = delivery
        self.stamper = stamper
        self.logger = logger
        self.maxBatch = maxBatch
        self.maxBatchBytes = maxBatchBytes
        self.recentPerChat = recentPerChat
    }

    /// Members reads made by batches so far.
    var membersReads: Int { memberReads.withLock { $0 } }
    /// Fence reads made so far (a batch acknowledged under the lease makes none).
    var fenceReads: Int { fenceReadCount.withLock { $0 } }
    /// Sends waiting for the chat's next batch (for tests).
    func queuedSends(chatId: Int64) -> Int { lanes.withLock { $0[chatId]?.order.count ?? 0 } }

    /// A member joined, left or was removed (its rows are already written at QUORUM): the next
    /// batch of the chat reads its members again, so a removed member's later sends are refused
    /// and a new member gets the next messages live. Called on the chat's owner before the change
    /// is acknowledged (`ChatService.membersChanged`).
    func membersChanged(chatId: Int64) {
        lanes.withLock { lanes in
            guard lanes[chatId] != nil else { return }
            lanes[chatId]?.members = nil
            lanes[chatId]?.membersVersion &+= 1
        }
    }

    /// The chat's members, from the owner's cache when it is current and knows every sender of
    /// the batch, else read from the ring (QUORUM) and cached.
    ///
    /// Current means: read under the live-set view this server holds now, and either read once
    /// the views had settled after that view's change (`LiveSetView.settled`) or the views are
    /// still settling. A change made through another server reaches this cache by
    /// `membersChanged` from that server, which tells the owner in its own view; views agree
    /// except within the settle time after a change, so an entry read while they may still
    /// differ is read once more when they have settled. In the steady state (no server joins
    /// or leaves) a send reads no members at all.
    private func memberIds(chatId: Int64, senders: Set<String>) async throws -> Set<String> {
        let view = lease?.liveSetView
        let (cached, version) = lanes.withLock { lanes -> (Members?, UInt64) in
            (lanes[chatId]?.members, lanes[chatId]?.membersVersion ?? 0)
        }
        if let cached, senders.isSubset(of: cached.ids), cached.view == view?.version,
            cached.settled || !(view?.settled ?? false)
        {
            return cached.ids
        }
        memberReads.withLock { $0 += 1 }
        let ids = Set(try await store.members(chatId).map(\.userId))
        lanes.withLock { lanes in
            guard lanes[chatId]?.membersVersion == version else { return }
            lanes[chatId]?.members = Members(ids: ids, view: view?.version, settled: view?.settled ?? true)
        }
        return ids
    }

    /// Places one send in the chat's log (or finds the earlier attempt of its clientId) and
    /// returns the ack once it is durable and fenced; the message event is queued for every
    /// member's devices first.
    func append(chatId: Int64, _ send: Send) async throws -> SendAck {
        let key = Key(sender: send.sender, clientId: send.clientId)
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<SendAck, any Error>) in
            enum Outcome {
                case done(Result<SendAck, any Error>)
                case queued(startPump: Bool)
            }
            func enqueue(_ lane: inout Lane) -> Outcome {
                // A retry goes through a batch: the stored message is read back and delivered again.
                if let r = lane.recent[key], r.safe, !send.retry {
                    guard r.textHash == send.text.hashValue else { return .done(.failure(Self.reused(send))) }
                    var ack = r.ack
                    ack.duplicate = true
                    return .done(.success(ack))
                }
                if var p = lane.flying[key] ?? lane.queue[key] {
                    guard p.send.text == send.text else { return .done(.failure(Self.reused(send))) }
                    p.waiters.append(c)
                    if lane.flying[key] != nil { lane.flying[key] = p } else { lane.queue[key] = p }
                    return .queued(startPump: false)
                }
                lane.queue[key] = Pending(send: send, waiters: [c])
                lane.order.append(key)
                if lane.running { return .queued(startPump: false) }
                lane.running = true
                return .queued(startPump: true)
            }
            let outcome = lanes.withLock { lanes in enqueue(&lanes[chatId, default: Lane()]) }
            switch outcome {
            case .done(let r): c.resume(with: r)
            case .queued(let start): if start { Task { await self.pump(chatId: chatId) } }
            }
        }
    }

    static func reused(_ send: Send) -> ChatError {
        ChatError(
            .clientIdReused,
            """
            clientId "\(send.clientId.prefix(40))" already belongs to another message with different text; \
            nothing was stored. Use a new clientId for each message (the same one only to retry that message).
            """)
    }

    private static func remember(_ lane: inout Lane, _ k: Key, _ r: Recent, limit: Int) {
        if lane.recent[k] == nil { lane.recentOrder.append(k) }
        lane.recent[k] = r
        if lane.recentOrder.count > limit { lane.recent[lane.recentOrder.removeFirst()] = nil }
    }

    /// Remembers the clientIds of messages already in the log (seen when opening the chat).
    private func remember(chatId: Int64, _ messages: [MessageRecord]) {
        lanes.withLock { lanes in
            _ = Self.withLane(&lanes, chatId) { lane in
                for m in messages.reversed() {
                    guard let c = m.clientId else { continue }
                    let ack = SendAck(
                        chatId: chatId, messageId: m.messageId, seq: m.seq, ts: m.ts, clientId: c, duplicate: false)
                    Self.remember(
                        &lane, Key(sender: m.sender, clientId: c),
                        Recent(ack: ack, textHash: m.text.hashValue, safe: false),
                        limit: recentPerChat)
                }
            }
        }
    }

    /// Forgets what this server knows of a chat (another server owns it now).
    func close(chatId: Int64) {
        lanes.withLock {
            $0[chatId]?.open = nil
            $0[chatId]?.members = nil
        }
    }

    private func pump(chatId: Int64) async {
        while true {
            let batch: [Key: Pending]? = lanes.withLock { lanes in
                Self.withLane(&lanes, chatId) { lane -> [Key: Pending]? in
                    guard !lane.order.isEmpty else {
                        lane.running = false
                        return nil
                    }
                    var count = 0
                    var bytes = 0
                    for k in lane.order.prefix(maxBatch) {
                        let size = lane.queue[k]?.send.text.utf8.count ?? 0
                        if count > 0 && bytes + size > maxBatchBytes { break }
                        bytes += size
                        count += 1
                    }
                    let take = lane.order.prefix(count)
                    lane.order.removeFirst(count)
                    var out: [Key: Pending] = [:]
                    for k in take {
                        if let p = lane.queue.removeValue(forKey: k) {
                            out[k] = p
                            lane.flying[k] = p
                        }
                    }
                    return out
                } ?? nil
            }
            guard let batch else { return }
            let order = batch.keys.sorted { ($0.sender, $0.clientId) < ($1.sender, $1.clientId) }
            let results = await process(chatId: chatId, keys: order, batch: batch)
            let waiters: [(CheckedContinuation<SendAck, any Error>, Result<SendAck, any Error>)] = lanes.withLock {
                lanes in
                Self.withLane(&lanes, chatId) { lane in
                    var out: [(CheckedContinuation<SendAck, any Error>, Result<SendAck, any Error>)] = []
                    for k in order {
                        guard let p = lane.flying.removeValue(forKey: k), let r = results[k] else { continue }
                        if case .success(let ack) = r {
                            Self.remember(
                                &lane, k, Recent(ack: ack, textHash: p.send.text.hashValue, safe: true),
                                limit: recentPerChat)
                        }
                        for (i, w) in p.waiters.enumerated() {
                            if i > 0, case .success(var ack) = r {
                                ack.duplicate = true
                                out.append((w, .success(ack)))
                            } else {
                                out.append((w, r))
                            }
                        }
                    }
                    return out
                } ?? []
            }
            for (w, r) in waiters { w.resume(with: r) }
        }
    }

    /// Writes one batch: opens the chat if needed, checks membership, resolves retries, places the
    /// new messages, writes them, fences, delivers. Returns a result per key.
    private func process(chatId: Int64, keys: [Key], batch: [Key: Pending]) async -> [Key: Result<SendAck, any Error>] {
        var results: [Key: Result<SendAck, any Error>] = [:]
        func failAll(_ e: any Error) -> [Key: Result<SendAck, any Error>] {
            Dictionary(uniqueKeysWithValues: keys.map { ($0, .failure(e)) })
        }
        do {
            let memberIds = try await memberIds(chatId: chatId, senders: Set(keys.map(\.sender)))
            var candidates: [Key] = []
            for k in keys {
                if memberIds.contains(k.sender) {
                    candidates.append(k)
                    continue
                }
                // The same answer whether the chat exists or not (ChatError.notMember).
                results[k] = .failure(ChatError.notMember(of: chatId))
            }
            // Open the chat first if this server has not: the opening fences the previous owner and
            // settles the log's end, so the lookups below see everything acknowledged before.
            var open: Open
            var justOpened = false
            if let o = lanes.withLock({ $0[chatId]?.open }) {
                open = o
            } else {
                open = try await self.open(chatId: chatId)
                justOpened = true
                remember(chatId: chatId, open.tail)
                open.tail = []
                let opened = open
                lanes.withLock { $0[chatId]?.open = opened }
            }
            // Retries — and, right after an ownership change, every send — may have been placed
            // already (by this server before a restart, or by the previous owner).
            // A clientId this server placed recently (or saw when opening) is known by its seq;
            // the others are looked up in the ring's index. Either way the stored message is read
            // back: a duplicate is delivered again as stored (its own prev).
            let known = lanes.withLock { lanes in
                candidates.compactMap { k in lanes[chatId]?.recent[k].map { (k, $0.ack.seq) } }
            }
            let knownSeqs = Dictionary(uniqueKeysWithValues: known)
            var earlier: [Key: MessageRecord] = [:]
            try await withThrowingTaskGroup(of: (Key, MessageRecord?).self) { group in
                for k in candidates where knownSeqs[k] != nil || batch[k]!.send.retry || justOpened {
                    group.addTask {
                        let seq: Int64?
                        if let s = knownSeqs[k] {
                            seq = s
                        } else {
                            seq = try await self.log.indexedSeq(chatId: chatId, sender: k.sender, clientId: k.clientId)
                        }
                        guard let seq else { return (k, nil) }
                        return (k, try await self.log.message(chatId: chatId, seq: seq))
                    }
                }
                for try await (k, m) in group { if let m { earlier[k] = m } }
            }
            var fresh: [Key] = []
            var redeliver: [MessageRecord] = []
            var duplicates: [Key: SendAck] = [:]
            for k in candidates {
                if let m = earlier[k] {
                    if m.text != batch[k]!.send.text {
                        results[k] = .failure(Self.reused(batch[k]!.send))
                    } else {
                        duplicates[k] = SendAck(
                            chatId: chatId, messageId: m.messageId, seq: m.seq, ts: m.ts, clientId: k.clientId,
                            duplicate: true)
                        redeliver.append(m)
                    }
                } else {
                    fresh.append(k)
                }
            }
            var placed: [MessageRecord] = []
            for k in fresh {
                let s = batch[k]!.send
                placed.append(
                    MessageRecord(
                        chatId: chatId, seq: open.next, prev: open.last,
                        messageId: ChatLog.messageId(chatId: chatId, sender: s.sender, clientId: s.clientId),
                        ts: stamper.next(), sender: s.sender, text: s.text, clientId: s.clientId))
                open.last = open.next
                open.next += 1
            }
            if !placed.isEmpty || !redeliver.isEmpty {
                do {
                    if !placed.isEmpty {
                        try await log.write(
                            ChatLog.batch(chatId: chatId, messages: placed, nowSeconds: store.clock.nowSeconds()))
                    }
                    // A duplicate is answered only under the same proof as a new message: the stored
                    // message it names may lie in the tail a newer opening closes.
                    // Under the lease no other server can have opened the chat since this one opened
                    // (or last fenced) it: no read.
                    let leased =
                        open.leaseStamp.map { lease?.mayAcknowledge(chatId: chatId, stamp: $0) ?? false } ?? false
                    if !leased {
                        // Stamped before the read: a fence that succeeds proves nobody had opened the
                        // chat when it began, so the lease covers the chat again from there.
                        let stamp = lease?.currentStamp(chatId: chatId)
                        try await fence(chatId: chatId, epoch: open.epoch)
                        open.leaseStamp = stamp
                    }
                } catch {
                    close(chatId: chatId)
                    throw error
                }
                let final = open
                lanes.withLock { lanes in
                    if lanes[chatId]?.open?.epoch == final.epoch || lanes[chatId]?.open == nil {
                        lanes[chatId]?.open = final
                    }
                }
                for (k, m) in zip(fresh, placed) {
                    results[k] = .success(
                        SendAck(
                            chatId: chatId, messageId: m.messageId, seq: m.seq, ts: m.ts, clientId: k.clientId,
                            duplicate: false))
                }
                for (k, ack) in duplicates { results[k] = .success(ack) }
            }
            for m in (placed + redeliver).sorted(by: { $0.seq < $1.seq }) {
                await delivery.deliver(.message(m), to: memberIds, excludingDevice: nil)
            }
            return results
        } catch let e as ChatError {
            return results.merging(failAll(e)) { old, _ in old }
        } catch {
            return results.merging(
                failAll(ChatError(.storageUnavailable, "the ring did not acknowledge the send (\(error)); retry"))
            ) { old, _ in old }
        }
    }

    /// Opens a new epoch of the chat on this server (docs/chat_ordering.md, "Failover"):
    ///
    /// 1. the header names the new epoch: from now on no earlier owner acknowledges anything
    ///    (its fence read after each batch would see this header);
    /// 2. a QUORUM read of the log's end: it sees every message an earlier owner acknowledged;
    /// 3. one mutation: a tombstone over every seq above that end and below the new epoch —
    ///    whatever an earlier owner was still writing there, never acknowledged, is never served —
    ///    and the messages this opening adopts (`adoption(chatId:newest:)`).
    ///
    /// Only then does this server look up, place or acknowledge anything in the chat.
    private func open(chatId: Int64) async throws -> Open {
        // With a lease: only once every lease another server could hold on this chat has run out
        // (docs/chat_ordering.md § Leases).
        let stamp = try await lease?.permitToOpen(chatId: chatId)
        let previous = try await log.header(chatId: chatId)?.epoch ?? 0
        let epoch = ChatLog.nextEpoch(after: previous, slot: ChatLog.epochSlot(of: serverId), step: epochStep())
        guard epoch < ChatLog.maxEpoch else {
            throw ChatError(
                .internalError, "chat \(chatId) has used up its epochs (2^30); it cannot change owner again")
        }
        try await log.putHeader(chatId: chatId, ChatLog.Header(epoch: epoch, owner: serverId))
        if let lease, let stamp, !lease.mayContinueOpening(chatId: chatId, stamp: stamp) {
            // The header write outlasted the lease: another server may hold one on this chat now,
            // and this server's end read and tombstone could hide what it acknowledges.
            throw ChatError(
                .storageUnavailable, "this chat server lost its ownership lease while opening chat \(chatId); retry")
        }
        let newest = try await log.entries(chatId: chatId, before: nil, limit: 256)
        let end = newest.first?.message.seq ?? 0
        let first = ChatLog.firstSeq(ofEpoch: epoch)
        guard end < first else {
            // Another server opened this very epoch (same slot, same draw, same header) and placed
            // messages in it: this one must not place at their seqs. Its fence will fail too.
            throw ChatError(
                .storageUnavailable, "another chat server opened chat \(chatId) while this one was opening it; retry")
        }
        let adopted = try await adoption(chatId: chatId, newest: newest)
        try await log.write(
            ChatLog.opening(
                chatId: chatId, epoch: epoch, end: end, adopting: adopted, nowSeconds: store.clock.nowSeconds()))
        logger.debug(
            "opened chat epoch",
            metadata: ["chat": "\(chatId)", "epoch": "\(epoch)", "end": "\(end)", "adopted": "\(adopted.count)"])
        return Open(epoch: epoch, last: end, next: first, tail: newest.map(\.message), leaseStamp: stamp)
    }

    /// The messages an opening must adopt: every one above the newest message it can prove was
    /// acknowledged (docs/chat_ordering.md § Late tombstones). Within an epoch, a message below
    /// the first message of the epoch's newest batch was acknowledged, since an owner writes a
    /// batch only after the one before it is acknowledged; the newest batch of each epoch may not
    /// have been, and an earlier opening that did not see it may still close it. `newest` is the
    /// first page of the log's end (newest first); older pages are read while no proof is found.
    private func adoption(chatId: Int64, newest: [ChatLog.Entry]) async throws -> [ChatLog.Entry] {
        var adopt: [ChatLog.Entry] = []
        var newestBatch: [Int64: Int64] = [:]
        var page = newest
        let pageSize = 256
        while true {
            for e in page {
                let epoch = ChatLog.epoch(ofSeq: e.message.seq)
                if let b = newestBatch[epoch] {
                    if e.message.seq < b { return adopt }
                } else {
                    newestBatch[epoch] = e.batch
                }
                adopt.append(e)
            }
            guard page.count == pageSize, let oldest = page.last?.message.seq else { return adopt }
            page = try await log.entries(chatId: chatId, before: oldest, limit: pageSize)
        }
    }

    /// The fence: a QUORUM read of the header after the batch is on a QUORUM. If it no longer
    /// names this server's epoch another server has opened the chat, and nothing is acknowledged.
    private func fence(chatId: Int64, epoch: Int64) async throws {
        fenceReadCount.withLock { $0 += 1 }
        let header = try await log.header(chatId: chatId)
        guard header == ChatLog.Header(epoch: epoch, owner: serverId) else {
            logger.debug(
                "chat moved to another server's epoch; this server stops ordering it",
                metadata: ["chat": "\(chatId)", "epoch": "\(epoch)", "header": "\(String(describing: header))"])
            throw ChatError(
                .storageUnavailable,
                "the chat's ordering moved to another chat server while sending; retry (with retry: true)")
        }
    }
}
