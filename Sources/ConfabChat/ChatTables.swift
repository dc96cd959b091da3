import ConfabEngine
import ConfabWire

/// How the chat server's data is laid out in the ring (docs/chat_data.md): table ids, column ids
/// and the byte encoding of keys. Their names are in `ChatSchema`, which takes the ids from here.
///
/// Partition keys: user ids are their UTF-8 bytes; chat ids are 8 bytes big-endian (as
/// `confab.messages` has them). Tables without clustering columns store their one row under the
/// clustering key `[int64 0]`, because the engine reserves the empty clustering key for the
/// partition header.
enum ChatTables {
    static let users: TableID = 2
    static let userChats: TableID = 3
    static let chats: TableID = 4
    static let chatMembers: TableID = 5
    /// `chat.message_ids`, protocol 1's idempotency table; nothing writes it now.
    static let messageIds: TableID = 6
    static let readCursors: TableID = 7
    static let servers: TableID = 8
    /// Each chat's log (`ChatLog`): header, idempotency index and messages in one partition.
    static let messages: TableID = 9
    /// Whom each user has blocked: they cannot add the user to groups or open a 1:1 with them.
    static let blocks: TableID = 10

    /// Columns of both rows of a user's partition: the registration row (`singleRow`) and the
    /// credentials row (`credentialsRow`), where `createdAt` names the registration it belongs to.
    enum UserColumn {
        static let passwordHash: UInt32 = 0
        static let createdAt: UInt32 = 1
        /// Credentials row only: the token generation (docs/chat_data.md § Accounts).
        static let generation: UInt32 = 2
    }
    enum UserChatColumn {
        static let kind: UInt32 = 0
        static let title: UInt32 = 1
        static let joinedAt: UInt32 = 2
    }
    enum ChatColumn {
        static let kind: UInt32 = 0
        static let title: UInt32 = 1
        static let createdBy: UInt32 = 2
        static let createdAt: UInt32 = 3
    }
    enum MemberColumn {
        static let role: UInt32 = 0
        static let joinedAt: UInt32 = 1
    }
    enum MessageIdColumn {
        static let ts: UInt32 = 0
        static let messageId: UInt32 = 1
    }
    /// Column 2 (not 0, the old microsecond cursor of protocol 1) so an old row never reads as a seq.
    enum ReadCursorColumn { static let readSeq: UInt32 = 2 }
    enum BlockColumn { static let since: UInt32 = 0 }
    enum ServerColumn {
        /// "http://host:port" devices are sent to (`wrong_server`, `/api/route`).
        static let address: UInt32 = 0
        /// "http://host:port" of the server's peer-link listener, kept off the public port.
        static let peerAddress: UInt32 = 1
        /// A random value rewritten by every heartbeat: the others count the server live while it
        /// changes (`PeerLiveness`).
        static let beat: UInt32 = 2
    }

    /// The clustering key of the single row of a table without clustering columns.
    static let singleRow = ClusteringKey([.int64(0)]).bytes
    /// A user's second row: the current password hash and token generation, written at the time
    /// of the change (the registration row's write time is fixed by its creation time).
    static let credentialsRow = ClusteringKey([.int64(1)]).bytes

    static func key(user: String) -> [UInt8] { Array(user.utf8) }
    static func key(chat: Int64) -> [UInt8] { PostedMessages.partitionKey(chatId: chat) }
    /// `chat.servers` has one partition: every server reads the whole live set at once.
    static let serversPartition = key(chat: 0)
}

/// A row as the chat server reads it: clustering components and live cell values, after the
/// partition's and row's deletions and TTLs are applied.
struct LiveRow: Sendable, Hashable {
    var clustering: [ClusteringKey.Component]
    var values: [UInt32: [UInt8]]

    func string(_ column: UInt32) -> String? { values[column].map { String(decoding: $0, as: UTF8.self) } }
    func int64(_ column: UInt32) -> Int64? {
        guard let v = values[column], v.count == 8 else { return nil }
        return v.reduce(0) { $0 << 8 | Int64($1) }
    }
    var firstInt64: Int64? { if case .int64(let v)? = clustering.first { return v } else { return nil } }
    func bytesComponent(_ i: Int) -> String? {
        guard i < clustering.count, case .bytes(let b) = clustering[i] else { return nil }
        return String(decoding: b, as: UTF8.self)
    }
}

extension ReplicaRows {
    /// The live rows at `nowSeconds`, in the order the read returned them.
    func liveRows(nowSeconds: Int64) -> [LiveRow] {
        rows.compactMap { row in
            var fragment = row.fragment
            if let d = header.deletion(covering: row.clustering) { fragment.applyDeletion(d) }
            if let d = fragment.deletion { fragment.applyDeletion(d) }
            guard fragment.isLive(now: nowSeconds), let comps = ClusteringKey.components(of: row.clustering) else {
                return nil
            }
            var values: [UInt32: [UInt8]] = [:]
            for cell in fragment.cells where cell.isLive(now: nowSeconds) { values[cell.column] = cell.value }
            return LiveRow(clustering: comps, values: values)
        }
    }
}

extension Array where Element == UInt8 {
    static func int64(_ v: Int64) -> [UInt8] {
        let u = UInt64(bitPattern: v)
        return (0..<8).map { UInt8(truncatingIfNeeded: u >> (56 - 8 * $0)) }
    }
}

/// Builds one-row mutations: a row with liveness and cells written at `writeTime`, optionally
/// expiring after `ttl` seconds.
struct RowWrite {
    var table: TableID
    var partitionKey: [UInt8]
    var clustering: [UInt8]
    var cells: [(UInt32, [UInt8])]
    var ttl: Int32 = 0

    func mutation(writeTime: Int64, nowSeconds: Int64) -> Mutation {
        let expires = ttl > 0 ? nowSeconds + Int64(ttl) : 0
        let fragment = RowFragment(
            liveness: LivenessInfo(timestamp: writeTime, ttl: ttl, expiresAt: expires),
            cells: cells.map { Cell(column: $0.0, timestamp: writeTime, value: $0.1, ttl: ttl, expiresAt: expires) })
        return Mutation(
            table: table, partitionKey: partitionKey, rows: [.init(clustering: clustering, fragment: fragment)])
    }

    /// A row tombstone (CQL `DELETE FROM t WHERE pk = ? AND ck = ?`).
    static func delete(table: TableID, partitionKey: [UInt8], clustering: [UInt8], writeTime: Int64, nowSeconds: Int64)
        -> Mutation
    {
        let fragment = RowFragment(deletion: DeletionTime(timestamp: writeTime, localDeletionTime: nowSeconds))
        return Mutation(
            table: table, partitionKey: partitionKey, rows: [.init(clustering: clustering, fragment: fragment)])
    }
}
