/// Where a node listens for peers and clients.
public struct NodeAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public static func < (a: NodeAddress, b: NodeAddress) -> Bool { (a.host, a.port) < (b.host, b.port) }

    public var description: String { "\(host):\(port)" }
}

/// A node's identity: a stable id (a UUID string generated once and kept in the data directory,
/// Cassandra's host ID) plus the address it currently listens on.
///
/// Equality, hashing and ordering use `id` only, so a node that comes back on another port is the
/// same node; the address is carried so the shell knows where to send.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var id: String
    public var address: NodeAddress

    public init(id: String, address: NodeAddress) {
        self.id = id
        self.address = address
    }

    public init(id: String, host: String, port: Int) {
        self.init(id: id, address: NodeAddress(host: host, port: port))
    }

    public static func == (a: NodeID, b: NodeID) -> Bool { a.id == b.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
    public static func < (a: NodeID, b: NodeID) -> Bool { a.id < b.id }

    public var description: String { "\(id)@\(address)" }
}
