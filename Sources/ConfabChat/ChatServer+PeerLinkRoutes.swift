import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOWebSocket

/// Many servers: `/internal/ws` (events other chat servers forward to the users this one owns)
/// and keeping each user's devices on the user's owner server (docs/chat_protocol.md).
extension ChatServer {
    /// Close code sent after a `wrong_server` error frame (421 is the HTTP status of the code).
    static let wrongServerCloseCode: UInt16 = 4021

    func addInternalWebSocket(to router: Router<ChatRequestContext>) {
        router.ws("/internal/ws") { inbound, outbound, context in
            try await self.serveInternal(inbound: inbound, outbound: outbound, request: context.request)
        }
    }

    /// One peer link from another chat server: the challenge–response first (`PeerHandshake`),
    /// then its frames. A sender that does not prove the secret within 10 s, or answers another
    /// connection's challenge, is closed with 4001 and has changed nothing.
    func serveInternal(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, request: Request)
        async throws
    {
        let receiverNonce = PeerHandshake.nonce()
        try await outbound.write(.text(PeerHandshake.challenge(nonce: receiverNonce)))
        let watchdog = Task {
            try await Task.sleep(for: .seconds(10))
            try? await outbound.close(.unknown(4001), reason: "handshake_timeout")
        }
        defer { watchdog.cancel() }
        var sender: String?
        // Answers to forwarded sends go back on this connection, written by one task in the
        // order they complete; those waiting together go as one batch to a sender that reads them.
        let answers = PeerQueue(maxFrames: .max, maxBytes: .max)
        let senderReadsBatches = PeerBatchSwitch()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while let frames = await answers.nextFrames(batching: senderReadsBatches.isOn) {
                    try await outbound.write(.text(PeerBatch.text(of: frames)))
                }
            }
            for try await message in inbound.messages(maxSize: 8 << 20) {
                guard case .text(let text) = message else { continue }
                guard sender != nil else {
                    guard let (from, senderNonce) = peerHandshake.verifyHello(text, receiverNonce: receiverNonce)
                    else {
                        ChatMetrics.shared.peerRefused.increment()
                        logger.warning(
                            "refused a peer link: its hello does not answer this connection's challenge with the deployment's secret"
                        )
                        try? await outbound.close(.unknown(4001), reason: "bad_token")
                        break
                    }
                    watchdog.cancel()
                    sender = from
                    answers.push(
                        peerHandshake.welcome(
                            receiverId: configuration.serverId, receiverNonce: receiverNonce, senderNonce: senderNonce))
                    continue
                }
                if text == PeerBatch.features {
                    if configuration.peerLinkBatches {
                        senderReadsBatches.set(true)
                        answers.push(PeerBatch.features)
                    }
                    continue
                }
                for text in (configuration.peerLinkBatches ? PeerBatch.parse(text) : nil) ?? [text] {
                    if let (id, forwarded) = PeerSend.parse(text) {
                        group.addTask {
                            let result = await Self.outcome {
                                try await self.chats.sequencer.append(chatId: forwarded.chatId, forwarded.send)
                            }
                            answers.push(PeerSend.result(id: id, result))
                        }
                        continue
                    }
                    if let (id, handle, password) = PeerRegister.parse(text) {
                        group.addTask {
                            let result = await Self.outcome {
                                try await self.accounts.register(handle: handle, password: password)
                            }
                            answers.push(PeerRegister.result(id: id, result))
                        }
                        continue
                    }
                    if let (id, chatId) = PeerMembersChanged.parse(text) {
                        self.chats.sequencer.membersChanged(chatId: chatId)
                        answers.push(PeerMembersChanged.result(id: id))
                        continue
                    }
                    if let (id, users) = PeerPresence.parse(text) {
                        answers.push(PeerPresence.result(id: id, users.prefix(500).map { hub.presence(of: $0) }))
                        continue
                    }
                    guard let frame = PeerFrame.parse(text) else { continue }
                    ChatMetrics.shared.forwardReceived.increment()
                    hub.deliver(EncodedEvent(type: frame.type, json: frame.json), to: frame.users)
                    if !frame.forwarded { forwardMisplaced(frame) }
                }
            }
            answers.finish()
            group.cancelAll()
        }
        // Frames written on a connection that ended may never have arrived: every device here
        // catches up rather than trusting that none was lost.
        if sender != nil, !shutdown.isTriggered {
            hub.deliver(EncodedEvent(.resync), to: hub.userIds)
        }
    }

    /// Presence of `users` as their owner servers see it: this server's hub for its own users, the
    /// owners' hubs (over the peer links, 2 s at most) for the others; an owner that does not
    /// answer leaves its users as this server sees them.
    func presence(of users: [String]) async -> [PresenceInfo] {
        var byOwner: [String: (address: String, users: [String])] = [:]
        var out: [String: PresenceInfo] = [:]
        for user in users {
            let owner = directory.owner(of: user)
            if owner.id == configuration.serverId {
                out[user] = hub.presence(of: user)
            } else {
                byOwner[owner.id, default: (owner.address, [])].users.append(user)
            }
        }
        await withTaskGroup(of: [PresenceInfo].self) { group in
            for (id, g) in byOwner {
                group.addTask {
                    if let link = self.peers.link(to: id),
                        let body = try? await link.request(
                            timeout: .seconds(2), { PeerPresence.encoded(id: $0, users: g.users) }),
                        let answer = PeerPresence.decode(body)
                    {
                        return answer
                    }
                    return g.users.map { self.hub.presence(of: $0) }
                }
            }
            for await list in group { for p in list { out[p.userId] = p } }
        }
        return users.compactMap { out[$0] }
    }

    /// Users of a forwarded frame this server does not own in its view (the sender's view of the
    /// live set differed): forward once more, to their owners in this view.
    func forwardMisplaced(_ frame: PeerFrame) {
        var byOwner: [String: (address: String, users: [String])] = [:]
        for user in frame.users {
            let owner = directory.owner(of: user)
            guard owner.id != configuration.serverId else { continue }
            byOwner[owner.id, default: (owner.address, [])].users.append(user)
        }
        for (id, group) in byOwner {
            peers.link(to: id)?.send(
                PeerFrame(type: frame.type, users: group.users, json: frame.json, forwarded: true))
        }
    }

    /// The `error` frame telling a device its user belongs to `owner` (the web client reconnects
    /// there): `{"code":"wrong_server","message",…,"server":"http://…","serverId","type":"error"}`.
    static func wrongServerFrame(userId: String, owner: (id: String, address: String)) -> String {
        struct Frame: Encodable {
            var type = "error"
            var code = "wrong_server"
            var message: String
            var server: String
            var serverId: String
        }
        let frame = Frame(
            message:
                "\(userId) belongs to chat server \(owner.id) at \(owner.address): connect there (or ask /api/route)",
            server: owner.address, serverId: owner.id)
        return String(decoding: (try? JSONEncoder.chat.encode(frame)) ?? Data(), as: UTF8.self)
    }

    /// 421 `{"error":{"code":"wrong_server","message","server","serverId"}}` for a long poll on a
    /// server that does not own the user (its session would get no forwarded events).
    func wrongServerResponse(userId: String, owner: (id: String, address: String)) -> Response {
        ChatMetrics.shared.wrongServer.increment()
        ChatMetrics.shared.error(.wrongServer)
        struct Inner: Encodable {
            var code = "wrong_server"
            var message: String
            var server: String
            var serverId: String
        }
        struct Body: Encodable { var error: Inner }
        return HTTPJSON.response(
            Body(
                error: Inner(
                    message: "\(userId) belongs to chat server \(owner.id) at \(owner.address): poll there",
                    server: owner.address, serverId: owner.id)),
            status: .init(code: 421))
    }

    /// Creates an account at the server that owns the handle, where sign-ups of one handle take
    /// turns: two people racing for a handle on two servers get one account and one
    /// `handle_taken` (issue 12). With no link to the owner (it just left, or this server is
    /// stopping) the sign-up runs here; an owner that does not answer gives `storage_unavailable`
    /// — the account may exist then, and a retry says `handle_taken` (log in instead).
    func register(handle: String, password: String) async throws -> AccountService.Session {
        let userId = try AccountService.userId(forHandle: handle)
        if let owner = foreignOwner(of: userId), let link = peers.link(to: owner.id) {
            let body = try await link.request(timeout: .seconds(10)) {
                PeerRegister.encoded(id: $0, handle: handle, password: password)
            }
            return try PeerRegister.decode(body).get()
        }
        return try await accounts.register(handle: handle, password: password)
    }

    /// A peer request's answer: the value, its `ChatError`, or any other error as `internal`.
    static func outcome<T: Sendable>(_ work: () async throws -> T) async -> Result<T, ChatError> {
        do { return .success(try await work()) } catch let e as ChatError { return .failure(e) } catch {
            return .failure(ChatError(.internalError, "\(error)"))
        }
    }

    /// The owner of `userId` when it is another server (the device must go there), else nil.
    func foreignOwner(of userId: String) -> (id: String, address: String)? {
        let owner = directory.owner(of: userId)
        return owner.id == configuration.serverId ? nil : owner
    }

    /// Follows the live set: stops links to servers that left, and sends on (wrong_server, 4021)
    /// the WebSocket devices of users this server no longer owns — after a server joins or comes
    /// back, its users must move there, since the others now forward their events to it.
    func watchOwnership() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.serverRefreshInterval)
            peers.retain(directory.peerLinkAddresses)
            peers.flushDropped()
            for user in hub.userIds {
                guard let owner = foreignOwner(of: user) else { continue }
                for case let outbox as Outbox in hub.sinks(of: user) {
                    outbox.push(text: Self.wrongServerFrame(userId: user, owner: owner))
                    outbox.close(code: Self.wrongServerCloseCode, reason: "wrong_server")
                    ChatMetrics.shared.wrongServer.increment()
                }
            }
        }
    }
}
