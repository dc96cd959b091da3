import ConfabEngine

extension SchemaRegistry {
    /// The chat server's keyspace (docs/chat_data.md). Messages themselves stay in
    /// `confab.messages`, so `confab history CHAT_ID` shows a chat's messages.
    public static let chatServerKeyspace = "chat"

    /// The chat server's tables, ids 2...9 (`messages`, 9, is each chat's log: docs/chat_ordering.md). Each is laid out so that one request the server makes
    /// often (log in, list a user's chats, fan a message out, retry a send) reads one partition.
    /// Column ids here are the ones `ConfabChat.ChatTables` writes.
    public static let chatTables: [TableSchema] = [
        TableSchema(
            keyspace: chatServerKeyspace, name: "users", id: 2, partitionKey: "user_id", clusteringColumns: [],
            columns: [0: "password_hash", 1: "created_at"]),
        TableSchema(
            keyspace: chatServerKeyspace, name: "user_chats", id: 3, partitionKey: "user_id",
            clusteringColumns: ["chat_id"], columns: [0: "kind", 1: "title", 2: "joined_at"]),
        TableSchema(
            keyspace: chatServerKeyspace, name: "chats", id: 4, partitionKey: "chat_id", clusteringColumns: [],
            columns: [0: "kind", 1: "title", 2: "created_by", 3: "created_at"]),
        TableSchema(
            keyspace: chatServerKeyspace, name: "chat_members", id: 5, partitionKey: "chat_id",
            clusteringColumns: ["user_id"], columns: [0: "role", 1: "joined_at"]),
        TableSchema(
            keyspace: chatServerKeyspace, name: "message_ids", id: 6, partitionKey: "chat_id",
            clusteringColumns: ["sender", "client_id"], columns: [0: "ts", 1: "message_id"]),
        TableSchema(
            keyspace: chatServerKeyspace, name: "read_cursors", id: 7, partitionKey: "chat_id",
            clusteringColumns: ["user_id"], columns: [0: "read_ts", 1: "read_message_id", 2: "read_seq"]),
        TableSchema(
            keyspace: chatServerKeyspace, name: "messages", id: 9, partitionKey: "chat_id",
            clusteringColumns: ["seq"],
            columns: [
                0: "sender", 1: "body", 2: "client_id", 3: "ts", 4: "message_id", 5: "prev", 6: "ref_seq",
                7: "epoch", 8: "owner",
            ]),
        TableSchema(
            keyspace: chatServerKeyspace, name: "servers", id: 8, partitionKey: "bucket",
            clusteringColumns: ["server_id"], columns: [0: "address"]),
    ]
}
