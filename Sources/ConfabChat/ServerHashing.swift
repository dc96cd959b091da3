import ConfabEngine

/// Consistent hashing of users over chat servers: each server owns `vnodes` points on a 64-bit
/// ring (Murmur3 x64 of "serverId#i"); a user belongs to the server owning the first point at or
/// after the hash of their id. Adding or removing a server moves only about 1/n of the users.
struct ServerHashing: Sendable, Hashable {
    private(set) var points: [(UInt64, String)] = []
    let servers: [String: String]

    static func == (a: ServerHashing, b: ServerHashing) -> Bool { a.servers == b.servers }
    func hash(into h: inout Hasher) { h.combine(servers) }

    /// `servers`: server id → address.
    init(servers: [String: String], vnodes: Int = 64) {
        self.servers = servers
        for id in servers.keys {
            for i in 0..<vnodes { points.append((Self.hash("\(id)#\(i)"), id)) }
        }
        points.sort { ($0.0, $0.1) < ($1.0, $1.1) }
    }

    static func hash(_ s: String) -> UInt64 {
        let bytes = Array(s.utf8)
        return bytes.withUnsafeBytes { Murmur3.hash128($0, seed: 0).0 }
    }

    /// The id of the server `userId` belongs to; nil when there are no servers.
    func owner(of userId: String) -> String? {
        guard !points.isEmpty else { return nil }
        let h = Self.hash(userId)
        var lo = 0
        var hi = points.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].0 < h { lo = mid + 1 } else { hi = mid }
        }
        return points[lo == points.count ? 0 : lo].1
    }
}
