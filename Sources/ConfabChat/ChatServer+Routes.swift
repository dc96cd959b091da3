import Foundation
import Hummingbird
import HummingbirdWebSocket

/// The HTTP API (docs/chat_protocol.md). Every handler authenticates, calls a service and answers
/// JSON; errors become `{"error":{...}}` in `ChatErrorMiddleware`.
extension ChatServer {
    struct Credentials: Decodable {
        var handle: String
        var password: String
    }
    struct SessionJSON: Encodable {
        var userId: String
        var token: String
        var expiresAt: Int64
    }
    struct DirectBody: Decodable { var with: String }
    struct GroupBody: Decodable {
        var title: String?
        var members: [String]
    }
    struct MemberBody: Decodable { var userId: String }
    struct SendBody: Decodable {
        var clientId: String
        var text: String
        var retry: Bool?
    }
    struct ReadBody: Decodable { var seq: String }
    struct SyncBody: Decodable {
        var cursors: [String: String]?
        var limit: Int?
    }
    struct AckJSON: Encodable {
        var chatId: String
        var messageId: String
        var seq: String
        var ts: Int64
        var clientId: String
        var duplicate: Bool
    }
    struct ChatsJSON: Encodable { var chats: [ChatSummary] }
    struct OK: Encodable { var ok = true }

    func addRoutes(to router: Router<ChatRequestContext>) {
        router.post("/api/register") { request, context in
            let c = try await HTTPJSON.decode(Credentials.self, from: request, limit: 4096)
            let s = try await self.credentials.admit(address: context.clientAddress, handle: c.handle) {
                try await self.register(handle: c.handle, password: c.password)
            }
            return HTTPJSON.response(
                SessionJSON(userId: s.userId, token: s.token, expiresAt: s.expiresAt), status: .created)
        }
        router.post("/api/login") { request, context in
            let c = try await HTTPJSON.decode(Credentials.self, from: request, limit: 4096)
            let s = try await self.credentials.admit(address: context.clientAddress, handle: c.handle) {
                try await self.accounts.login(handle: c.handle, password: c.password)
            }
            return HTTPJSON.response(SessionJSON(userId: s.userId, token: s.token, expiresAt: s.expiresAt))
        }
        // Sign out everywhere: every token of the user issued so far stops working on every
        // server (within a second); the caller gets a fresh token. Asked of the user's home
        // server, where their WebSockets are, so those close at once (4001 signed_out).
        router.post("/api/logout-everywhere") { request, _ in
            let userId = try await self.user(request)
            if let owner = self.foreignOwner(of: userId) {
                return self.wrongServerResponse(userId: userId, owner: owner)
            }
            let s = try await self.accounts.signOutEverywhere(userId: userId)
            for device in self.hub.sinks(of: userId) { device.signOut() }
            return HTTPJSON.response(SessionJSON(userId: s.userId, token: s.token, expiresAt: s.expiresAt))
        }
        // A password change ends every older token the same way.
        router.post("/api/password") { request, context in
            let userId = try await self.user(request)
            if let owner = self.foreignOwner(of: userId) {
                return self.wrongServerResponse(userId: userId, owner: owner)
            }
            struct Change: Decodable {
                var old: String
                var new: String
            }
            let c = try await HTTPJSON.decode(Change.self, from: request, limit: 4096)
            let s = try await self.credentials.admit(address: context.clientAddress, handle: userId) {
                try await self.accounts.changePassword(userId: userId, from: c.old, to: c.new)
            }
            for device in self.hub.sinks(of: userId) { device.signOut() }
            return HTTPJSON.response(SessionJSON(userId: s.userId, token: s.token, expiresAt: s.expiresAt))
        }
        router.get("/api/route") { request, _ in
            guard let user = request.uri.queryParameters.get("user"), !user.isEmpty else {
                throw ChatError(.badRequest, "route needs ?user=<userId>")
            }
            let owner = self.directory.owner(of: user.lowercased())
            struct Route: Encodable {
                var server: String
                var serverId: String
            }
            return HTTPJSON.response(Route(server: owner.address, serverId: owner.id))
        }
        router.get("/api/health") { _, _ in
            struct Peer: Encodable {
                var connected: Bool
                var queued: Int
            }
            struct Health: Encodable {
                var serverId: String
                var servers: Int
                var connectedUsers: Int
                var connectedDevices: Int
                var peers: [String: Peer]
            }
            return HTTPJSON.response(
                Health(
                    serverId: self.configuration.serverId, servers: self.directory.servers.count,
                    connectedUsers: self.hub.connectedUsers, connectedDevices: self.hub.connectedDevices,
                    peers: self.peers.status.mapValues { Peer(connected: $0.connected, queued: $0.queued) }))
        }
        router.get("/api/me") { request, _ in
            struct Me: Encodable { var userId: String }
            return HTTPJSON.response(Me(userId: try await self.user(request)))
        }
        router.get("/api/chats") { request, _ in
            HTTPJSON.response(ChatsJSON(chats: try await self.chats.chats(for: try await self.user(request))))
        }
        router.post("/api/chats/direct") { request, _ in
            let user = try await self.user(request)
            let body = try await HTTPJSON.decode(DirectBody.self, from: request, limit: 4096)
            return HTTPJSON.response(try await self.chats.directChat(user, with: body.with))
        }
        router.post("/api/chats/group") { request, _ in
            let user = try await self.user(request)
            let body = try await HTTPJSON.decode(GroupBody.self, from: request, limit: 64 * 1024)
            return HTTPJSON.response(
                try await self.chats.createGroup(user, title: body.title ?? "", members: body.members),
                status: .created)
        }
        router.get("/api/chats/:chatId") { request, context in
            let user = try await self.user(request)
            return HTTPJSON.response(try await self.chats.chat(user, chatId: try Self.chatId(context)))
        }
        router.post("/api/chats/:chatId/members") { request, context in
            let user = try await self.user(request)
            let body = try await HTTPJSON.decode(MemberBody.self, from: request, limit: 4096)
            let chat = try await self.chats.addMember(user, chatId: try Self.chatId(context), newMember: body.userId)
            return HTTPJSON.response(chat)
        }
        router.delete("/api/chats/:chatId/members/:userId") { request, context in
            let user = try await self.user(request)
            let target = context.parameters.get("userId") ?? ""
            try await self.chats.removeMember(user, chatId: try Self.chatId(context), target: target)
            return HTTPJSON.response(OK())
        }
        router.get("/api/blocks") { request, _ in
            struct Blocks: Encodable { var blocked: [String] }
            return HTTPJSON.response(Blocks(blocked: try await self.chats.blocks(of: try await self.user(request))))
        }
        router.post("/api/blocks") { request, _ in
            let user = try await self.user(request)
            let body = try await HTTPJSON.decode(MemberBody.self, from: request, limit: 4096)
            try await self.chats.block(user, body.userId)
            return HTTPJSON.response(OK())
        }
        router.delete("/api/blocks/:userId") { request, context in
            let user = try await self.user(request)
            try await self.chats.unblock(user, context.parameters.get("userId") ?? "")
            return HTTPJSON.response(OK())
        }
        router.post("/api/chats/:chatId/leave") { request, context in
            let user = try await self.user(request)
            try await self.chats.removeMember(user, chatId: try Self.chatId(context), target: user)
            return HTTPJSON.response(OK())
        }
        router.get("/api/chats/:chatId/messages") { request, context in
            let user = try await self.user(request)
            let q = request.uri.queryParameters
            let before = try Self.int(q.get("before"), "before")
            let limit = try Self.int(q.get("limit"), "limit") ?? 50
            let page = try await self.chats.history(
                user, chatId: try Self.chatId(context), before: before, limit: Int(limit))
            return HTTPJSON.response(page)
        }
        router.post("/api/chats/:chatId/messages") { request, context in
            let user = try await self.user(request)
            let body = try await HTTPJSON.decode(
                SendBody.self, from: request, limit: ChatServerConfiguration.maxMessageBodyBytes)
            let ack = try await self.chats.send(
                user, chatId: try Self.chatId(context), clientId: body.clientId, text: body.text,
                retry: body.retry ?? false)
            return HTTPJSON.response(
                AckJSON(
                    chatId: String(ack.chatId), messageId: ack.messageId, seq: String(ack.seq), ts: ack.ts,
                    clientId: ack.clientId, duplicate: ack.duplicate))
        }
        router.post("/api/chats/:chatId/read") { request, context in
            let user = try await self.user(request)
            let body = try await HTTPJSON.decode(ReadBody.self, from: request, limit: 4096)
            guard let seq = Int64(body.seq) else { throw ChatError(.badRequest, "seq is a decimal string") }
            try await self.chats.markRead(user, chatId: try Self.chatId(context), cursor: ReadCursor(seq: seq))
            return HTTPJSON.response(OK())
        }
        router.post("/api/chats/:chatId/typing") { request, context in
            let user = try await self.user(request)
            try await self.chats.typing(user, chatId: try Self.chatId(context))
            return HTTPJSON.response(OK())
        }
        router.post("/api/sync") { request, _ in
            let user = try await self.user(request)
            let body = try await HTTPJSON.decode(SyncBody.self, from: request, limit: 8 << 20)
            var cursors: [Int64: Int64] = [:]
            for (k, v) in body.cursors ?? [:] {
                guard let chat = Int64(k), let seq = Int64(v), seq >= 0 else {
                    throw ChatError(
                        .badRequest,
                        "cursors maps chat ids to seqs, both decimal strings (got \"\(k.prefix(30))\": \"\(v.prefix(30))\")"
                    )
                }
                cursors[chat] = seq
            }
            return HTTPJSON.response(try await self.chats.sync(user, cursors: cursors, limit: body.limit ?? 500))
        }
        // Presence only of the caller and people who share a chat with them (issue 12): anyone
        // else is left out of the answer, as if unknown, so presence cannot be watched from outside.
        router.get("/api/presence") { request, _ in
            let caller = try await self.user(request)
            let contacts = try await self.chats.contacts(of: caller)
            let users = (request.uri.queryParameters.get("users") ?? "").split(separator: ",").prefix(500).map {
                $0.lowercased()
            }.filter { $0 == caller || contacts.contains($0) }
            struct PresenceJSON: Encodable { var presence: [PresenceInfo] }
            return HTTPJSON.response(PresenceJSON(presence: await self.presence(of: users)))
        }
        router.get("/api/poll") { request, _ in
            try await self.poll(request)
        }
        router.get("/ws") { request, _ -> Response in
            _ = try await self.user(request)
            throw ChatError(.badRequest, "/ws is a WebSocket endpoint: connect with an Upgrade: websocket request")
        }
    }

    /// The user a request's bearer token names. `?token=` counts only on the WebSocket upgrade
    /// (`webSocket: true`), where browsers cannot set headers: a token in any other URL ends up
    /// in proxy logs, browser history and Referer headers.
    func user(_ request: Request, webSocket: Bool = false) async throws -> String {
        try await user(
            authorization: request.headers[.authorization], queryToken: request.uri.queryParameters.get("token"),
            webSocket: webSocket)
    }

    func user(authorization: String?, queryToken: String?, webSocket: Bool) async throws -> String {
        var token: String? = nil
        if let header = authorization {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { token = String(parts[1]) }
        }
        if token == nil, let query = queryToken {
            guard webSocket else {
                throw ChatError(
                    .badToken, "a token in the URL is accepted only on /ws; send Authorization: Bearer <token>")
            }
            token = query
        }
        return try await accounts.authenticate(token)
    }

    static func chatId(_ context: ChatRequestContext) throws(ChatError) -> Int64 {
        guard let text = context.parameters.get("chatId"), let id = Int64(text), id > 0 else {
            throw ChatError(.unknownChat, "a chat id is a positive decimal number")
        }
        return id
    }

    static func int(_ text: String?, _ name: String) throws(ChatError) -> Int64? {
        guard let text, !text.isEmpty else { return nil }
        guard let v = Int64(text) else {
            throw ChatError(.badRequest, "\(name) must be an integer (got \"\(text.prefix(30))\")")
        }
        return v
    }
}
