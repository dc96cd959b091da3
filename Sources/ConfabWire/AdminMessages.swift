import ConfabRing

/// An operator's request to run engine maintenance (`confab flush`, `confab compact`) on a node
/// or, through it, on every member of the ring. Admin requests go to a named node rather than a
/// key's replicas: the point is to act on specific nodes' disks.
public struct AdminRequest: Hashable, Sendable {
    /// What to run. Raw values are the wire codes (docs/node_protocol.md § Admin).
    public enum Operation: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        /// Write the memtable to an SSTable and wait until it is on disk.
        case flush = 0x01
        /// Flush, then merge every SSTable into one (a major compaction).
        case compact = 0x02
        /// Leave the ring: go LEAVING, stream every range this node replicates to the nodes that
        /// gain it, announce LEFT, then shut down (`confab ring decommission`). Scope `node` only;
        /// answered once the ranges are handed off and LEFT has been gossiped.
        case decommission = 0x03

        public var description: String {
            switch self {
            case .flush: return "flush"
            case .compact: return "compact"
            case .decommission: return "decommission"
            }
        }
    }

    /// Where to run it. Raw values are the wire codes.
    public enum Scope: UInt8, Hashable, Sendable {
        /// Only the node that receives the request.
        case node = 0x00
        /// Every member of the ring the receiving node knows (itself included); the receiver
        /// forwards the request with scope `node` and collects the answers.
        case ring = 0x01
    }

    public var operation: Operation
    public var scope: Scope

    public init(operation: Operation, scope: Scope = .node) {
        self.operation = operation
        self.scope = scope
    }
}

/// One node's outcome of an admin request.
public struct AdminResult: Hashable, Sendable, Codable {
    /// The node's id (empty if it could not be reached and its id is unknown).
    public var nodeID: String
    /// "host:port" of the node.
    public var address: String
    /// Wall time the operation took on that node, in microseconds.
    public var elapsedMicros: UInt64
    /// Why it failed; nil on success.
    public var error: String?

    public init(nodeID: String, address: String, elapsedMicros: UInt64, error: String? = nil) {
        self.nodeID = nodeID
        self.address = address
        self.elapsedMicros = elapsedMicros
        self.error = error
    }
}

/// The answer to an `AdminRequest`: one result per node it ran on (one for scope `node`).
public struct AdminResponse: Hashable, Sendable {
    public var results: [AdminResult]

    public init(results: [AdminResult]) { self.results = results }
}

extension AdminRequest {
    func encode(into w: inout WireWriter) {
        w.u8(operation.rawValue)
        w.u8(scope.rawValue)
    }

    static func decode(from r: inout WireReader) throws(WireError) -> AdminRequest {
        let op = try r.u8("operation")
        guard let operation = Operation(rawValue: op) else {
            throw WireError(
                .invalid,
                "Admin: unknown operation 0x\(String(op, radix: 16)) (flush 0x01, compact 0x02, decommission 0x03)")
        }
        let sc = try r.u8("scope")
        guard let scope = Scope(rawValue: sc) else {
            throw WireError(.invalid, "Admin: unknown scope \(sc) (0 this node, 1 every node)")
        }
        return AdminRequest(operation: operation, scope: scope)
    }
}

extension AdminResponse {
    func encode(into w: inout WireWriter) {
        w.u32(UInt32(results.count))
        for result in results {
            w.string(result.nodeID)
            w.string(result.address)
            w.u64(result.elapsedMicros)
            w.u8(result.error == nil ? 0 : 1)
            if let e = result.error { w.longString(e) }
        }
    }

    static func decode(from r: inout WireReader) throws(WireError) -> AdminResponse {
        let count = try r.u32("result count")
        guard count <= 100_000 else { throw r.fail("implausible result count \(count)") }
        var results: [AdminResult] = []
        for _ in 0..<count {
            let id = try r.string("node id")
            let address = try r.string("address")
            let elapsed = try r.u64("elapsed")
            let failed = try r.u8("failed flag")
            guard failed <= 1 else { throw r.fail("failed flag \(failed)") }
            let error = failed == 1 ? try r.longString("error") : nil
            results.append(AdminResult(nodeID: id, address: address, elapsedMicros: elapsed, error: error))
        }
        return AdminResponse(results: results)
    }
}
