import ConfabEngine
import ConfabWire

/// The tables the chat layer keeps in the ring, by name: what a node must serve for `confab post`,
/// `confab history` and the chat servers (docs/chat_data.md). The node knows no tables of its own
/// (there is no DDL yet); the `confab` executable gives every node this registry. Table and column
/// ids come from `ChatTables`, `ChatLog` and `PostedMessages`, where the code that writes them
/// lives, so each id is defined once.
public enum ChatSchema {
    /// The chat server's keyspace. `confab.messages` (`PostedMessages`) is the ring-level table of
    /// `confab post` and `confab history`; the chat server itself does not write it.
    public static let keyspace = "chat"

    /// Every table, `confab.messages` first. Each chat table is laid out so that one request the
    /// server makes often (log in, list a user's chats, fan a message out, retry a send) reads one
    /// partition.
    public static let tables: [TableSchema] = [
        PostedMessages.schema,
        TableSchema(
            keyspace: keyspace, name: "users", id: ChatTables.users, partitionKey: "user_id", clusteringColumns: [],
            columns: [
                ChatTables.UserColumn.passwordHash: "password_hash", ChatTables.UserColumn.createdAt: "created_at",
            ]
        ),
        TableSchema(
            keyspace: keyspace, name: "user_chats", id: ChatTables.userChats, partitionKey: "user_id",
            clusteringColumns: ["chat_id"],
            columns: [
                ChatTables.UserChatColumn.kind: "kind", ChatTables.UserChatColumn.title: "title",
                ChatTables.UserChatColumn.joinedAt: "joined_at",
            ]),
        TableSchema(
            keyspace: keyspace, name: "chats", id: ChatTables.chats, partitionKey: "chat_id", clusteringColumns: [],
            columns: [
                ChatTables.ChatColumn.kind: "kind", ChatTables.ChatColumn.title: "title",
                ChatTables.ChatColumn.createdBy: "created_by", ChatTables.ChatColumn.createdAt: "created_at",
            ]),
        TableSchema(
            keyspace: keyspace, name: "chat_members", id: ChatTables.chatMembers, partitionKey: "chat_id",
            clusteringColumns: ["user_id"],
            columns: [ChatTables.MemberColumn.role: "role", ChatTables.MemberColumn.joinedAt: "joined_at"]),
        // Protocol 1's idempotency table: nothing writes it now, old rows stay readable.
        TableSchema(
            keyspace: keyspace, name: "message_ids", id: ChatTables.messageIds, partitionKey: "chat_id",
            clusteringColumns: ["sender", "client_id"],
            columns: [ChatTables.MessageIdColumn.ts: "ts", ChatTables.MessageIdColumn.messageId: "message_id"]),
        TableSchema(
            keyspace: keyspace, name: "read_cursors", id: ChatTables.readCursors, partitionKey: "chat_id",
            clusteringColumns: ["user_id"],
            columns: [0: "read_ts", 1: "read_message_id", ChatTables.ReadCursorColumn.readSeq: "read_seq"]),
        TableSchema(
            keyspace: keyspace, name: "messages", id: ChatLog.table, partitionKey: "chat_id",
            clusteringColumns: ["seq"],
            columns: [
                ChatLog.Column.sender: "sender", ChatLog.Column.body: "body", ChatLog.Column.clientId: "client_id",
                ChatLog.Column.ts: "ts", ChatLog.Column.messageId: "message_id", ChatLog.Column.prev: "prev",
                ChatLog.Column.refSeq: "ref_seq", ChatLog.Column.epoch: "epoch", ChatLog.Column.owner: "owner",
                ChatLog.Column.batch: "batch",
            ]),
        TableSchema(
            keyspace: keyspace, name: "servers", id: ChatTables.servers, partitionKey: "bucket",
            clusteringColumns: ["server_id"],
            columns: [
                ChatTables.ServerColumn.address: "address", ChatTables.ServerColumn.peerAddress: "peer_address",
                ChatTables.ServerColumn.beat: "beat",
            ]),
        TableSchema(
            keyspace: keyspace, name: "blocks", id: ChatTables.blocks, partitionKey: "user_id",
            clusteringColumns: ["blocked"], columns: [ChatTables.BlockColumn.since: "since"]),
    ]

    /// The registry a node serving the chat layer is configured with (keyspaces `confab` and
    /// `chat`, each at the default replication factor until the node's configuration says otherwise).
    public static let registry = SchemaRegistry(tables: tables)
}
