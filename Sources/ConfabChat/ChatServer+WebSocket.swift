import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOWebSocket

/// `/ws`: one device's WebSocket. Frames in are handled one at a time, in order (so one device's
/// sends are acknowledged in the order it sent them); frames out come from the device's `Outbox`,
/// written by a task of their own so a slow socket never blocks the hub.
extension ChatServer {
    func addWebSocket(to router: Router<ChatRequestContext>) {
        router.ws("/ws") { inbound, outbound, context in
            try await self.serve(inbound: inbound, outbound: outbound, request: context.request)
        }
    }

    /// Sends a close frame and waits (at most 2 s) for the client's close before the connection
    /// ends. Returning at once would close the TCP socket with the client's frames unread, and the
    /// kernel then resets the connection — which can discard the error frame just sent before the
    /// client reads it (seen in tests as a socket that received nothing).
    static func refuse(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, code: UInt16,
        reason: String
    ) async throws {
        try await outbound.close(.unknown(code), reason: reason)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await _ in inbound.messages(maxSize: 1 << 16) {}
                } catch {}
            }
            group.addTask { try? await Task.sleep(for: .seconds(2)) }
            await group.next()
            group.cancelAll()
        }
    }

    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, request: Request) async throws {
        // Every open socket counts, accepted or being refused, so refusals cannot pile up.
        let open = openSockets.add(1, ordering: .relaxed).newValue
        defer { openSockets.subtract(1, ordering: .relaxed) }
        if open > configuration.maxConnections + configuration.maxRefusing {
            ChatMetrics.shared.serverFull.increment()
            try await outbound.close(.unknown(1013), reason: "server_full")
            return
        }
        let userId: String
        do {
            userId = try await user(request, webSocket: true)
        } catch {
            // Upgrade first, then refuse: a browser sees the close code (4001) but never an HTTP
            // status of a failed handshake, and can tell "log in again" from "network down".
            let error =
                error as? ChatError
                ?? ChatError(.storageUnavailable, "cannot check the token now (\(error)); retry")
            try await outbound.write(.text(ServerEvent.error(error, ref: nil).json()))
            // 4001 means "log in again"; a token that could not be checked now is 1013, "try again later".
            let signedOut = error.code == .badToken || error.code == .tokenExpired
            try await Self.refuse(
                inbound: inbound, outbound: outbound, code: signedOut ? 4001 : 1013, reason: error.code.name)
            return
        }
        if let owner = foreignOwner(of: userId) {
            // Events for this user are delivered on its owner server only: send the device there.
            ChatMetrics.shared.wrongServer.increment()
            try await outbound.write(.text(Self.wrongServerFrame(userId: userId, owner: owner)))
            try await Self.refuse(
                inbound: inbound, outbound: outbound, code: Self.wrongServerCloseCode, reason: "wrong_server")
            return
        }
        if hub.connectedDevices >= configuration.maxConnections {
            ChatMetrics.shared.serverFull.increment()
            let error = ChatError(
                .serverFull,
                """
                this chat server holds its maximum of \(configuration.maxConnections) connections; retry in a few seconds
                """)
            try await outbound.write(.text(ServerEvent.error(error, ref: nil).json()))
            try await Self.refuse(inbound: inbound, outbound: outbound, code: 1013, reason: "server_full")
            return
        }
        let outbox = Outbox(
            deviceId: hub.makeDeviceId(), maxEvents: configuration.outboxMaxEvents,
            maxBytes: configuration.outboxMaxBytes)
        outbox.push(EncodedEvent(.hello(userId: userId, serverId: configuration.serverId)))
        let cameOnline = hub.add(outbox, for: userId)
        if cameOnline { Task { await self.announcePresence(of: userId) } }
        defer {
            if hub.remove(deviceId: outbox.deviceId, for: userId) { Task { await self.announcePresence(of: userId) } }
        }
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while true {
                    switch await outbox.next() {
                    case .text(let text):
                        try await outbound.write(.text(text))
                    case .close(let code, let reason):
                        try? await outbound.close(code == 1000 ? .normalClosure : .unknown(code), reason: reason)
                        return
                    }
                }
            }
            group.addTask {
                do {
                    for try await message in inbound.messages(maxSize: self.configuration.maxFrameBytes) {
                        guard case .text(let text) = message else {
                            outbox.push(
                                EncodedEvent(.error(ChatError(.badFrame, "frames are JSON text, not binary"), ref: nil))
                            )
                            continue
                        }
                        await self.handle(text, from: userId, outbox: outbox)
                    }
                } catch {
                    self.logger.debug("WebSocket read ended", metadata: ["user": "\(userId)", "error": "\(error)"])
                }
            }
            // Whichever side ends first ends the other: the device closed (wake the writer), or
            // the writer closed the connection (4008, shutdown) and a reader that may never get
            // the peer's close frame must not keep the connection.
            _ = try? await group.next()
            outbox.close(code: 1000, reason: "")
            group.cancelAll()
            try? await group.waitForAll()
        }
    }

    /// One frame from a device; answers go into its outbox.
    func handle(_ text: String, from userId: String, outbox: Outbox) async {
        let frame: ClientFrame
        switch ClientFrame.parse(text) {
        case .success(let f): frame = f
        case .failure(let f):
            outbox.push(EncodedEvent(.error(f.error, ref: f.ref)))
            return
        }
        do {
            switch frame {
            case .send(let chatId, let clientId, let text, let retry):
                do {
                    let ack = try await chats.send(userId, chatId: chatId, clientId: clientId, text: text, retry: retry)
                    outbox.push(EncodedEvent(.ack(ack)))
                } catch let e as ChatError {
                    outbox.push(EncodedEvent(.error(e, ref: clientId)))
                }
            case .typing(let chatId):
                try await chats.typing(userId, chatId: chatId)
            case .read(let chatId, let cursor):
                try await chats.markRead(userId, chatId: chatId, cursor: cursor)
            case .sync(let cursors, let limit):
                outbox.push(
                    EncodedEvent(
                        .sync(try await chats.sync(userId, cursors: cursors, limit: min(max(limit ?? 500, 1), 1000)))))
            case .ping:
                outbox.push(EncodedEvent(.pong))
            }
        } catch let e as ChatError {
            outbox.push(EncodedEvent(.error(e, ref: nil)))
        } catch {
            outbox.push(EncodedEvent(.error(ChatError(.internalError, "\(error)"), ref: nil)))
        }
    }
}
