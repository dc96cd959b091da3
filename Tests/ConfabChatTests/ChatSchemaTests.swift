import ConfabEngine
import ConfabWire
import Testing

@testable import ConfabChat

/// The chat layer declares its tables once (`ChatSchema`, ids from the code that writes them) and
/// is the only layer that knows them; `confab.messages` has one writer, `ConfabClient.post`.
@Suite struct ChatSchemaTests {
    @Test func everyTableIdAndNameIsDeclaredOnce() throws {
        let tables = ChatSchema.registry.tables
        #expect(Set(tables.map(\.id)).count == tables.count, "table ids: \(tables.map(\.id))")
        #expect(Set(tables.map(\.qualifiedName)).count == tables.count, "\(tables.map(\.qualifiedName))")
        #expect(ChatSchema.registry.keyspaces.map(\.name).sorted() == ["chat", "confab"])
        // The names the ring's clients and docs use, resolved to the ids the chat code writes.
        #expect(try ChatSchema.registry.resolve(keyspace: "confab", table: "messages").id == PostedMessages.table)
        #expect(try ChatSchema.registry.resolve(keyspace: "chat", table: "messages").id == ChatLog.table)
        #expect(try ChatSchema.registry.resolve(keyspace: "chat", table: "users").id == ChatTables.users)
        #expect(try ChatSchema.registry.resolve(keyspace: "chat", table: "servers").id == ChatTables.servers)
    }

    /// Everything a chat server does writes only tables `ChatSchema` declares, and never
    /// `confab.messages`: a chat's messages have one home, its log (`chat.messages`), and
    /// `confab.messages` one writer (`confab post`), so the two never disagree on write times.
    @Test func theChatServerWritesOnlyItsDeclaredTablesAndNeverConfabMessages() async throws {
        let f = ServiceFixture()
        try await f.users(["ann", "ben", "cyd"])
        let direct = try await f.chats.directChat("ann", with: "ben")
        let group = try await f.chats.createGroup("ann", title: "trio", members: ["ben", "cyd"])
        let sent = try await f.chats.send("ann", chatId: direct.chatId, clientId: "c1", text: "hello")
        _ = try await f.chats.send("ben", chatId: group.chatId, clientId: "c2", text: "hi all")
        try await f.chats.markRead("ben", chatId: direct.chatId, cursor: ReadCursor(seq: sent.seq))
        _ = try await f.chats.addMember("ann", chatId: group.chatId, newMember: "cyd")
        try await f.chats.removeMember("ann", chatId: group.chatId, target: "cyd")

        let written = f.storage.tablesWritten
        let declared = Set(ChatSchema.registry.tables.map(\.id))
        #expect(written.isSubset(of: declared), "undeclared tables written: \(written.subtracting(declared))")
        #expect(!written.contains(PostedMessages.table), "the chat server wrote confab.messages")
        #expect(written.contains(ChatLog.table), "the messages did not go to the chat log")
    }
}
