import Foundation
import Hummingbird

/// `GET /api/poll`: long polling for devices that cannot hold a WebSocket. The same events as the
/// WebSocket, in a JSON array; the cursor both names the device's session and acknowledges what
/// it has received.
extension ChatServer {
    func poll(_ request: Request) async throws -> Response {
        let userId = try await user(request)
        if let owner = foreignOwner(of: userId) { return wrongServerResponse(userId: userId, owner: owner) }
        let q = request.uri.queryParameters
        let timeout = min(max(try Self.int(q.get("timeout"), "timeout") ?? 25, 0), Int64(configuration.maxPollSeconds))
        let now = clock.nowMicros()
        guard let (session, acked) = polls.session(cursor: q.get("cursor"), userId: userId) else {
            // First poll, or the session is gone (expired, overflowed, other server): a new one.
            // `reset` tells the device it may have missed events and should sync.
            let (session, cameOnline) = polls.open(userId: userId)
            if cameOnline { Task { await self.announcePresence(of: userId) } }
            let hello = ServerEvent.hello(userId: userId, serverId: configuration.serverId).json()
            return body(events: [hello], cursor: session.cursor(after: 0), reset: true)
        }
        var (events, last) = session.take(after: acked, nowMicros: now)
        if events.isEmpty, timeout > 0, !shutdown.isTriggered {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await session.waitForEvent(after: acked) }
                group.addTask { try? await Task.sleep(for: .seconds(timeout)) }
                group.addTask { await self.shutdown.wait() }
                await group.next()
                group.cancelAll()
            }
            (events, last) = session.take(after: acked, nowMicros: clock.nowMicros())
        }
        return body(events: events, cursor: session.cursor(after: last), reset: false)
    }

    private func body(events: [String], cursor: String, reset: Bool) -> Response {
        // Events are already JSON: splice them in rather than decode and re-encode.
        let json =
            #"{"cursor":"# + "\"\(cursor)\"" + #","events":["# + events.joined(separator: ",") + "]" + #","reset":"#
            + (reset ? "true" : "false") + "}"
        return HTTPJSON.raw(Data(json.utf8))
    }
}
