import ConfabEngine
import ConfabWire
import Foundation

/// Each chat's log in `chat.messages` (docs/chat_ordering.md): one partition per chat, clustered
/// by one int64 `seq`. Three kinds of row share the partition so that a batch of sends — messages
/// and the rows that make their client ids idempotent — is one mutation, applied atomically on
/// every replica, one ring write:
///
///     seq == 0              the header: the newest epoch opened and the server that opened it
///     seq <  0              idempotency index: (sender, clientId) → the seq it became
///     seq >= 2^32           messages: seq = epoch * 2^32 + n, n = 1, 2, 3, …
///
/// Write timestamps are chosen so that conflicts resolve the same way on every replica whatever
/// the servers' clocks say: the header is written at its epoch (a newer epoch always wins), a
/// message and an index row at the message's seq (a later placement wins), and the tombstone that
/// closes the earlier epochs' unacknowledged tail when epoch e opens at e·2^32 — above every seq of
/// an earlier epoch, so nothing an earlier owner writes there later is live, and below what a later
/// opening writes when it adopts messages (docs/chat_ordering.md § Late tombstones).
struct ChatLog: Sendable {
    let store: ChatCatalog

    static let table = ChatTables.messages
    static let epochShift: Int64 = 32
    /// Epochs stay below 2^30, so seqs (epoch·2^32 + n) and write times fit an Int64 with room.
    static let maxEpoch: Int64 = 1 << 30

    enum Column {
        static let sender: UInt32 = 0
        static let body: UInt32 = 1
        static let clientId: UInt32 = 2
        static let ts: UInt32 = 3
        static let messageId: UInt32 = 4
        static let prev: UInt32 = 5
        static let refSeq: UInt32 = 6
        static let epoch: UInt32 = 7
        static let owner: UInt32 = 8
        /// The seq of the first message of the batch that placed this one: within an epoch, a
        /// message below the newest batch's first was acknowledged (the owner writes a batch only
        /// after the one before it is acknowledged). Absent on rows written before it existed:
        /// such a row counts as a batch of its own.
        static let batch: UInt32 = 9
    }

    /// A message as the log stores it, with the batch that placed it.
    struct Entry: Sendable, Hashable {
        var message: MessageRecord
        var batch: Int64
    }

    struct Header: Sendable, Hashable {
        var epoch: Int64
        var owner: String
    }

    static func firstSeq(ofEpoch e: Int64) -> Int64 { e << epochShift + 1 }

    static func epoch(ofSeq seq: Int64) -> Int64 { seq >> epochShift }

    /// The write time of what the opening of epoch e writes (its closing tombstone and the
    /// messages it adopts): above every seq of an earlier epoch, below every seq of e.
    static func openingWriteTime(epoch e: Int64) -> Int64 { e << epochShift }

    /// An epoch's low 8 bits name the server that drew it (`epochSlot`), so two servers whose
    /// slots differ never draw the same epoch, even from the same header at the same moment: they
    /// never place messages at the same seqs (docs/chat_ordering.md § Failover).
    static let epochSlotBits: Int64 = 8

    /// Murmur3 of the server id, its low 8 bits.
    static func epochSlot(of serverId: String) -> Int64 {
        let (h, _) = Array(serverId.utf8).withUnsafeBytes { Murmur3.hash128($0, seed: 0xE90C) }
        return Int64(h & 0xFF)
    }

    /// The epoch a server with `slot` opens after `previous`: above it by `1 + step` slot widths,
    /// `step` random in 0..<256 (a random gap makes the order of two racing openers' epochs a
    /// coin toss, not a property of their ids).
    static func nextEpoch(after previous: Int64, slot: Int64, step: Int64) -> Int64 {
        ((previous >> epochSlotBits) + 1 + step) << epochSlotBits | slot
    }

    static func key(_ seq: Int64) -> [UInt8] { ClusteringKey([.int64(seq)]).bytes }

    /// The index row's key for a (sender, clientId): Murmur3 of both with the top bit set, so it
    /// is negative. Two pairs hashing alike (2^-63) would share a row; the row keeps the pair, and
    /// a lookup that finds another pair treats it as absent.
    static func indexSeq(sender: String, clientId: String) -> Int64 {
        let bytes = Array(sender.utf8) + [0] + Array(clientId.utf8)
        let (h, _) = bytes.withUnsafeBytes { Murmur3.hash128($0, seed: 0x5EC0) }
        return Int64(bitPattern: h | (1 << 63))
    }

    /// The message id of (chat, sender, clientId): the same for every attempt of one send, so a
    /// device recognises a retried message whichever server stored it.
    ///
    /// The hash's input is the chat id in decimal, NUL, the sender, NUL, the clientId; the id is
    /// its two halves in 16 lowercase hex digits each. Written byte by byte: the interpolation,
    /// radix conversions and padding it replaces were 1.4 % of an owner server at 2,000 sends/s.
    static func messageId(chatId: Int64, sender: String, clientId: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(22 + sender.utf8.count + clientId.utf8.count)
        bytes.append(contentsOf: String(chatId).utf8)
        bytes.append(0)
        bytes.append(contentsOf: sender.utf8)
        bytes.append(0)
        bytes.append(contentsOf: clientId.utf8)
        let (a, b) = bytes.withUnsafeBytes { Murmur3.hash128($0, seed: 0x3E55) }
        return String(unsafeUninitializedCapacity: 32) { out in
            for i in 0..<16 {
                out[i] = hexDigits[Int(truncatingIfNeeded: (a >> (60 - 4 * UInt64(i))) & 0xF)]
                out[16 + i] = hexDigits[Int(truncatingIfNeeded: (b >> (60 - 4 * UInt64(i))) & 0xF)]
            }
            return 32
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private func partition(_ chatId: Int64) -> [UInt8] { ChatTables.key(chat: chatId) }

    // MARK: Header

    func header(chatId: Int64) async throws -> Header? {
        let q = SliceQuery(
            table: Self.table, partitionKey: partition(chatId),
            lower: ClusteringBound(ClusteringKey([.int64(0)]), inclusive: true),
            upper: ClusteringBound(ClusteringKey([.int64(0)]), inclusive: true), limit: 1)
        guard let r = try await store.read(q).first, let e = r.int64(Column.epoch) else { return nil }
        return Header(epoch: e, owner: r.string(Column.owner) ?? "")
    }

    func putHeader(chatId: Int64, _ h: Header) async throws {
        let row = RowWrite(
            table: Self.table, partitionKey: partition(chatId), clustering: Self.key(0),
            cells: [(Column.epoch, .int64(h.epoch)), (Column.owner, Array(h.owner.utf8))])
        try await store.write(row.mutation(writeTime: h.epoch, nowSeconds: store.clock.nowSeconds()))
    }

    // MARK: Messages

    /// Message rows per ring read. A stored message is at most ~401 KB (100,000 scalars of up to
    /// four bytes, and its ids), so 64 rows stay under half the nodes' 64 MiB frame
    /// (`max_frame_bytes`). One read of a whole page was refused as `tooLarge` once its rows passed
    /// the frame: a chat whose newest 256 messages were that large could not be opened by a new
    /// owner (no send went through), nor its history read, nor a device caught up on it.
    static let rowsPerRead = 64

    /// Row bytes per ring read (`SliceQuery.byteLimit`). A read ends after the row that reaches
    /// it, so an answer holds at most ~0.9 MB (512 KiB and one largest row) and stays under a
    /// node frame as small as 1 MiB; 64 rows alone could hold ~26 MB.
    static let bytesPerRead = 512 * 1024

    /// Messages read up to a JSON byte budget, and whether the reads stopped at it.
    struct MessageRun {
        var messages: [MessageRecord]
        /// The messages read hold more than the budget (`MessageRecord.jsonBytesBound`), so the
        /// reads stopped there and more may follow even if every message read is used.
        var stoppedAtBudget: Bool
    }

    /// Messages with seq in (after, before), oldest first, at most `limit`.
    func messages(chatId: Int64, after: Int64, before: Int64? = nil, limit: Int) async throws -> [MessageRecord] {
        try await run(chatId: chatId, after: after, before: before, limit: limit, maxBytes: .max).messages
    }

    /// `messages(chatId:after:before:limit:)`, the reads stopping early once the messages read
    /// hold more than `maxBytes` of JSON.
    func run(chatId: Int64, after: Int64, before: Int64? = nil, limit: Int, maxBytes: Int) async throws -> MessageRun {
        let q = SliceQuery(
            table: Self.table, partitionKey: partition(chatId),
            lower: ClusteringBound(ClusteringKey([.int64(max(after, 0))]), inclusive: false),
            upper: before.map { ClusteringBound(ClusteringKey([.int64($0)]), inclusive: false) }, limit: limit)
        let (messages, stopped) = try await sliced(q, maxBytes: maxBytes, bytes: \.jsonBytesBound) {
            message(chatId: chatId, $0)
        }
        return MessageRun(messages: messages, stoppedAtBudget: stopped)
    }

    /// Messages with seq < before (or the newest), newest first, at most `limit`.
    func messages(chatId: Int64, before: Int64?, limit: Int) async throws -> [MessageRecord] {
        try await run(chatId: chatId, before: before, limit: limit, maxBytes: .max).messages
    }

    /// `messages(chatId:before:limit:)`, the reads stopping early once the messages read hold
    /// more than `maxBytes` of JSON.
    func run(chatId: Int64, before: Int64?, limit: Int, maxBytes: Int) async throws -> MessageRun {
        let q = SliceQuery(
            table: Self.table, partitionKey: partition(chatId),
            lower: ClusteringBound(ClusteringKey([.int64(0)]), inclusive: false),
            upper: before.map { ClusteringBound(ClusteringKey([.int64($0)]), inclusive: false) },
            reversed: true, limit: limit)
        let (messages, stopped) = try await sliced(q, maxBytes: maxBytes, bytes: \.jsonBytesBound) {
            message(chatId: chatId, $0)
        }
        return MessageRun(messages: messages, stoppedAtBudget: stopped)
    }

    /// Messages with seq < before (or the newest) with their batches, newest first, at most `limit`.
    func entries(chatId: Int64, before: Int64?, limit: Int) async throws -> [Entry] {
        let q = SliceQuery(
            table: Self.table, partitionKey: partition(chatId),
            lower: ClusteringBound(ClusteringKey([.int64(0)]), inclusive: false),
            upper: before.map { ClusteringBound(ClusteringKey([.int64($0)]), inclusive: false) },
            reversed: true, limit: limit)
        return try await sliced(q) { r in
            message(chatId: chatId, r).map { Entry(message: $0, batch: r.int64(Column.batch) ?? $0.seq) }
        }.items
    }

    /// Reads `q` (message rows only: seq > 0) in slices of at most `rowsPerRead` rows and
    /// `bytesPerRead` row bytes, each resuming at the previous slice's cursor, until `q.limit`
    /// rows, a slice without a cursor (the end of the range), or more than `maxBytes` by `bytes`
    /// (`stoppedAtBudget`).
    /// Each slice is a QUORUM read, so the concatenation is as contiguous as one read: below a
    /// seq a QUORUM read returns, every message is readable (docs/chat_ordering.md), and the next
    /// slice starts right after the cursor, which a slice cut in bytes sets as well.
    private func sliced<T>(
        _ q: SliceQuery, maxBytes: Int = .max, bytes: (T) -> Int = { _ in 0 }, _ map: (LiveRow) -> T?
    ) async throws -> (items: [T], stoppedAtBudget: Bool) {
        var out: [T] = []
        var held = 0
        var remaining = q.limit
        var slice = q
        slice.byteLimit = Self.bytesPerRead
        while remaining > 0 {
            slice.limit = min(remaining, Self.rowsPerRead)
            let (rows, cursor) = try await store.readPage(slice)
            for r in rows {
                guard let t = map(r) else { continue }
                out.append(t)
                held += bytes(t)
            }
            remaining -= rows.count
            guard let cursor, held <= maxBytes else { break }
            slice.cursor = cursor
        }
        return (out, held > maxBytes)
    }

    func message(chatId: Int64, seq: Int64) async throws -> MessageRecord? {
        let q = SliceQuery(
            table: Self.table, partitionKey: partition(chatId),
            lower: ClusteringBound(ClusteringKey([.int64(seq)]), inclusive: true),
            upper: ClusteringBound(ClusteringKey([.int64(seq)]), inclusive: true), limit: 1)
        return try await store.read(q).first.flatMap { message(chatId: chatId, $0) }
    }

    private func message(chatId: Int64, _ r: LiveRow) -> MessageRecord? {
        guard case .int64(let seq)? = r.clustering.first, seq > 0, let sender = r.string(Column.sender) else {
            return nil
        }
        return MessageRecord(
            chatId: chatId, seq: seq, prev: r.int64(Column.prev) ?? 0, messageId: r.string(Column.messageId) ?? "",
            ts: r.int64(Column.ts) ?? 0, sender: sender, text: r.string(Column.body) ?? "",
            clientId: r.string(Column.clientId))
    }

    // MARK: Idempotency index

    /// The seq a (sender, clientId) was placed at, if an index row says so.
    func indexedSeq(chatId: Int64, sender: String, clientId: String) async throws -> Int64? {
        let k = Self.indexSeq(sender: sender, clientId: clientId)
        let q = SliceQuery(
            table: Self.table, partitionKey: partition(chatId),
            lower: ClusteringBound(ClusteringKey([.int64(k)]), inclusive: true),
            upper: ClusteringBound(ClusteringKey([.int64(k)]), inclusive: true), limit: 1)
        guard let r = try await store.read(q).first, r.string(Column.sender) == sender,
            r.string(Column.clientId) == clientId
        else { return nil }
        return r.int64(Column.refSeq)
    }

    // MARK: Batches

    /// The opening of `epoch` after the log's end `end` (docs/chat_ordering.md § Failover), as
    /// one mutation: a tombstone over every seq in (end, first seq of `epoch`) — the earlier
    /// epochs' unacknowledged tail — and the messages the opening adopts, rewritten as they are,
    /// both at `openingWriteTime(epoch:)`. An adopted message outlives the closing tombstone of
    /// any earlier opening, however late that lands.
    static func opening(chatId: Int64, epoch: Int64, end: Int64, adopting: [Entry], nowSeconds: Int64) -> Mutation {
        let writeTime = openingWriteTime(epoch: epoch)
        var rows: [Mutation.Row] = []
        for e in adopting {
            rows += messageRows(chatId: chatId, e.message, batch: e.batch, writeTime: writeTime, nowSeconds: nowSeconds)
        }
        rows.sort { compareBytes($0.clustering, $1.clustering) < 0 }
        var header = PartitionHeader()
        let below = firstSeq(ofEpoch: epoch)
        if end + 1 < below {
            header.rangeTombstones = [
                RangeTombstone(
                    start: key(end + 1), end: key(below),
                    deletion: DeletionTime(timestamp: writeTime, localDeletionTime: nowSeconds))
            ]
        }
        return Mutation(table: table, partitionKey: ChatTables.key(chat: chatId), header: header, rows: rows)
    }

    /// One batch of new messages as a single mutation: each message's row and its index row,
    /// written at the message's seq.
    static func batch(chatId: Int64, messages: [MessageRecord], nowSeconds: Int64) -> Mutation {
        var rows: [Mutation.Row] = []
        let first = messages.first?.seq ?? 0
        for m in messages {
            rows += messageRows(chatId: chatId, m, batch: first, writeTime: m.seq, nowSeconds: nowSeconds)
            if let c = m.clientId {
                let index = RowWrite(
                    table: table, partitionKey: ChatTables.key(chat: chatId),
                    clustering: key(indexSeq(sender: m.sender, clientId: c)),
                    cells: [
                        (Column.sender, Array(m.sender.utf8)), (Column.clientId, Array(c.utf8)),
                        (Column.refSeq, .int64(m.seq)),
                    ])
                rows.append(contentsOf: index.mutation(writeTime: m.seq, nowSeconds: nowSeconds).rows)
            }
        }
        rows.sort { compareBytes($0.clustering, $1.clustering) < 0 }
        return Mutation(table: table, partitionKey: ChatTables.key(chat: chatId), header: PartitionHeader(), rows: rows)
    }

    private static func messageRows(
        chatId: Int64, _ m: MessageRecord, batch: Int64, writeTime: Int64, nowSeconds: Int64
    ) -> [Mutation.Row] {
        var cells: [(UInt32, [UInt8])] = [
            (Column.sender, Array(m.sender.utf8)), (Column.body, Array(m.text.utf8)),
            (Column.ts, .int64(m.ts)), (Column.messageId, Array(m.messageId.utf8)),
            (Column.prev, .int64(m.prev)), (Column.batch, .int64(batch)),
        ]
        if let c = m.clientId { cells.append((Column.clientId, Array(c.utf8))) }
        return RowWrite(table: table, partitionKey: ChatTables.key(chat: chatId), clustering: key(m.seq), cells: cells)
            .mutation(writeTime: writeTime, nowSeconds: nowSeconds).rows
    }

    func write(_ mutation: Mutation) async throws {
        try await store.write(mutation)
    }
}
