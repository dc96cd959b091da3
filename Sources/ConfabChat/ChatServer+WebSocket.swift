import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1

/// `/ws`: one device's WebSocket, served in its channel's pipeline (`DeviceSocketChannel`,
/// `DeviceSocketHandler`). Frames in are handled one at a time, in order (so one device's sends are
/// acknowledged in the order it sent them); frames out come from the device's `Outbox`, written
/// while the socket takes them, so a slow socket never blocks the hub.
extension ChatServer {
    /// The public port's server: Hummingbird for HTTP, device sockets on `/ws`.
    func publicServer() -> HTTPServerBuilder {
        HTTPServerBuilder { [self] responder in
            DeviceSocketChannel(
                responder: responder, path: "/ws", maxFrameBytes: configuration.maxFrameBytes,
                accept: { [self] _, head in deviceSocket(head) })
        }
    }

    /// The handler of a socket upgraded on `/ws`; admission starts when it joins the pipeline.
    func deviceSocket(_ head: HTTPRequestHead) -> DeviceSocketHandler {
        // Every open socket counts, accepted or being refused, so refusals cannot pile up.
        let open = openSockets.add(1, ordering: .relaxed).newValue
        let outbox = Outbox(
            deviceId: hub.makeDeviceId(), maxEvents: configuration.outboxMaxEvents,
            maxBytes: configuration.outboxMaxBytes)
        let frames = DeviceFrames(outbox: outbox) { [self] text, userId, outbox in
            await handle(text, from: userId, outbox: outbox)
        }
        let authorization = head.headers["authorization"].first
        let queryToken = URI(head.uri).queryParameters.get("token")
        return DeviceSocketHandler(
            frames: frames, pingInterval: .seconds(configuration.pingIntervalSeconds),
            admit: { [self] frames in
                await admit(frames, open: open, authorization: authorization, queryToken: queryToken)
            },
            closed: { [self] frames in
                openSockets.subtract(1, ordering: .relaxed)
                guard let userId = frames.close() else { return }
                if hub.remove(deviceId: frames.outbox.deviceId, for: userId) {
                    Task { await self.announcePresence(of: userId) }
                }
            })
    }

    /// Checks a new socket's token, its user's home server and this server's capacity; then
    /// registers it and handles its frames. A refusal is an error frame and a close code
    /// (docs/chat_protocol.md, "Close codes"), written by the socket's handler.
    func admit(_ frames: DeviceFrames, open: Int, authorization: String?, queryToken: String?) async {
        let outbox = frames.outbox
        if open > configuration.maxConnections + configuration.maxRefusing {
            ChatMetrics.shared.serverFull.increment()
            outbox.close(code: 1013, reason: "server_full")
            return
        }
        let userId: String
        do {
            userId = try await user(authorization: authorization, queryToken: queryToken, webSocket: true)
        } catch {
            // Upgrade first, then refuse: a browser sees the close code (4001) but never an HTTP
            // status of a failed handshake, and can tell "log in again" from "network down".
            let error =
                error as? ChatError
                ?? ChatError(.storageUnavailable, "cannot check the token now (\(error)); retry")
            outbox.push(EncodedEvent(.error(error, ref: nil)))
            // 4001 means "log in again"; a token that could not be checked now is 1013, "try again later".
            let signedOut = error.code == .badToken || error.code == .tokenExpired
            outbox.close(code: signedOut ? 4001 : 1013, reason: error.code.name)
            return
        }
        if let owner = foreignOwner(of: userId) {
            // Events for this user are delivered on its owner server only: send the device there.
            ChatMetrics.shared.wrongServer.increment()
            outbox.push(text: Self.wrongServerFrame(userId: userId, owner: owner))
            outbox.close(code: Self.wrongServerCloseCode, reason: "wrong_server")
            return
        }
        if hub.connectedDevices >= configuration.maxConnections {
            ChatMetrics.shared.serverFull.increment()
            let error = ChatError(
                .serverFull,
                """
                this chat server holds its maximum of \(configuration.maxConnections) connections; retry in a few seconds
                """)
            outbox.push(EncodedEvent(.error(error, ref: nil)))
            outbox.close(code: 1013, reason: "server_full")
            return
        }
        if shutdown.isTriggered {
            outbox.close(code: 1000, reason: "going_away")
            return
        }
        outbox.push(EncodedEvent(.hello(userId: userId, serverId: configuration.serverId)))
        var cameOnline = false
        guard frames.admit(userId, register: { cameOnline = hub.add(outbox, for: userId) }) else { return }
        if cameOnline { Task { await self.announcePresence(of: userId) } }
        await frames.handleWaiting()
    }

    /// Shutdown: every device socket closes with 1000 (docs/chat_protocol.md, "Close codes") and reconnects.
    func closeDeviceSockets() {
        for user in hub.userIds {
            for case let outbox as Outbox in hub.sinks(of: user) { outbox.close(code: 1000, reason: "going_away") }
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
