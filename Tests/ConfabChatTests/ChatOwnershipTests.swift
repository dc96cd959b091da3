import Foundation
import Testing

/// Devices live on their user's owner server: when a server joins, the users it now owns are sent
/// on from the old one (wrong_server, 4021), and a long poll on a non-owner gets 421.
struct ChatOwnershipTests {
    @Test func whenAServerJoinsTheUsersItNowOwnsAreSentThere() async throws {
        let stack = try await ChatStack.start {
            $0.heartbeatInterval = .milliseconds(200)
            $0.heartbeatTTLSeconds = 10
            $0.serverRefreshInterval = .milliseconds(200)
        }
        // Alone, the first server owns everyone: twelve users connect to it.
        let users = (0..<12).map { "joiner\($0)" }
        var tokens: [String: String] = [:]
        for u in users { tokens[u] = try await stack.register(u) }
        var sockets: [String: TestSocket] = [:]
        for u in users {
            let s = try await stack.socket(token: tokens[u])
            _ = try await s.next("hello")
            sockets[u] = s
        }
        let b = try await stack.startAnotherServer(serverId: "server-b") {
            $0.heartbeatInterval = .milliseconds(200)
            $0.heartbeatTTLSeconds = 10
            $0.serverRefreshInterval = .milliseconds(200)
        }
        try await eventuallyTrue("both servers see each other") {
            let a = try await stack.http(.get, "/api/health").json["servers"] as? Int
            let other = try await stack.http(.get, "/api/health", port: b.port).json["servers"] as? Int
            return a == 2 && other == 2
        }
        var moved = 0
        for u in users {
            let owner = try await stack.http(.get, "/api/route?user=\(u)").json
            guard owner["serverId"] as? String == "server-b" else { continue }
            moved += 1
            let frame = try await sockets[u]!.next("error", timeout: .seconds(5))
            #expect(
                frame["code"] as? String == "wrong_server" && frame["server"] as? String == "http://127.0.0.1:\(b.port)"
            )
            #expect(try await sockets[u]!.closeCode(timeout: .seconds(5)) == 4021)
            // Polling on the old server is refused the same way.
            let poll = try await stack.http(.get, "/api/poll?timeout=0", token: tokens[u])
            #expect(poll.status == 421 && poll.errorCode == "wrong_server")
            #expect((poll.json["error"] as? [String: Any])?["server"] as? String == "http://127.0.0.1:\(b.port)")
        }
        #expect(moved > 0, "none of 12 users moved to the new server")
        // Users the first server still owns keep their connection.
        for u in users {
            guard try await stack.http(.get, "/api/route?user=\(u)").json["serverId"] as? String != "server-b" else {
                continue
            }
            try sockets[u]!.send(["type": "ping"])
            _ = try await sockets[u]!.next("pong")
        }
        for s in sockets.values { await s.close() }
        await b.group.triggerGracefulShutdown()
        try await b.task.value
        try await stack.stop()
    }
}
