import Foundation
import Hummingbird
import NIOCore

/// Operations endpoints: `/metrics` (Prometheus text), `/health` (the process is up) and
/// `/ready` (heartbeating into the ring and its live set read since: a client homed now stays
/// homed). docs/operations.md.
extension ChatServer {
    func addOperationsRoutes(to router: Router<ChatRequestContext>) {
        router.get("/metrics") { _, _ in
            // Gauges that are cheaper to read at scrape time than to keep current.
            ChatMetrics.shared.peerQueueDepth.record(self.peers.status.values.reduce(0) { $0 + $1.queued })
            ChatMetrics.shared.liveServers.record(self.directory.servers.count)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            headers[.cacheControl] = "no-store"
            let body = self.configuration.metricsExposition?() ?? []
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/health") { _, _ in
            struct Health: Encodable {
                var status: String
                var serverId: String
            }
            return HTTPJSON.response(Health(status: "up", serverId: self.configuration.serverId))
        }
        router.get("/ready") { _, _ in
            struct Ready: Encodable {
                var ready: Bool
                var serverId: String
                var heartbeating: Bool
                var servers: [String]
                var reasons: [String]
            }
            let heartbeating = self.directory.isLive
            let ready = self.directory.hasSeenPeers
            var reasons: [String] = []
            if !heartbeating {
                reasons.append("no recent heartbeat reached the ring (chat.servers)")
            } else if !ready {
                reasons.append("has not read the live chat servers since its first heartbeat")
            }
            let body = Ready(
                ready: ready, serverId: self.configuration.serverId, heartbeating: heartbeating,
                servers: self.directory.servers.keys.sorted(), reasons: reasons)
            return HTTPJSON.response(body, status: ready ? .ok : .serviceUnavailable)
        }
    }
}
