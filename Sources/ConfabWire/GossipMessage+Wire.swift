import ConfabRing

/// The byte encoding of the gossip exchange (docs/node_protocol.md § GossipSyn/GossipAck/GossipAck2).
/// Pure functions over `WireWriter`/`WireReader`, so every length is checked on decode.
extension GossipMessage {
    /// The frame type carrying this message.
    var wireType: MessageType {
        switch payload {
        case .syn: return .gossipSyn
        case .ack: return .gossipAck
        case .ack2: return .gossipAck2
        }
    }

    func encode(into w: inout WireWriter) {
        w.string(clusterName)
        w.nodeID(from)
        switch payload {
        case .syn(let digests):
            w.digests(digests)
        case .ack(let requests, let states):
            w.digests(requests)
            w.endpointStates(states)
        case .ack2(let states):
            w.endpointStates(states)
        }
    }

    static func decode(_ type: MessageType, from r: inout WireReader) throws(WireError) -> GossipMessage {
        let cluster = try r.string("cluster name")
        let from = try r.nodeID("sender")
        let payload: Payload
        switch type {
        case .gossipSyn: payload = .syn(digests: try r.digests())
        case .gossipAck: payload = .ack(requests: try r.digests(), states: try r.endpointStates())
        default: payload = .ack2(states: try r.endpointStates())
        }
        return GossipMessage(clusterName: cluster, from: from, payload: payload)
    }
}

/// Limits that keep a malformed count from allocating without bound.
private enum GossipLimits {
    static let endpoints: UInt32 = 100_000
    static let applicationStates: UInt16 = 1_024
}

extension WireWriter {
    mutating func nodeID(_ n: NodeID) {
        string(n.id)
        string(n.address.host)
        u16(UInt16(clamping: n.address.port))
    }

    mutating func digests(_ ds: [GossipDigest]) {
        u32(UInt32(ds.count))
        for d in ds {
            nodeID(d.node)
            i64(d.generation)
            i64(d.maxVersion)
        }
    }

    mutating func endpointStates(_ states: [EndpointState]) {
        u32(UInt32(states.count))
        for s in states {
            nodeID(s.node)
            i64(s.heartbeat.generation)
            i64(s.heartbeat.version)
            let values = s.applicationStates.sorted { $0.key < $1.key }
            u16(UInt16(clamping: values.count))
            for (key, value) in values.prefix(Int(UInt16.max)) {
                string(key.rawValue)
                longString(value.value)
                i64(value.version)
            }
        }
    }
}

extension WireReader {
    mutating func nodeID(_ field: String) throws(WireError) -> NodeID {
        let id = try string("\(field) id")
        let host = try string("\(field) host")
        let port = try u16("\(field) port")
        return NodeID(id: id, host: host, port: Int(port))
    }

    mutating func digests() throws(WireError) -> [GossipDigest] {
        let n = try u32("digest count")
        guard n <= GossipLimits.endpoints else { throw fail("implausible digest count \(n)") }
        var out: [GossipDigest] = []
        for _ in 0..<n {
            out.append(
                GossipDigest(
                    node: try nodeID("digest node"), generation: try i64("generation"),
                    maxVersion: try i64("max version")))
        }
        return out
    }

    mutating func endpointStates() throws(WireError) -> [EndpointState] {
        let n = try u32("endpoint state count")
        guard n <= GossipLimits.endpoints else { throw fail("implausible endpoint state count \(n)") }
        var out: [EndpointState] = []
        for _ in 0..<n {
            let node = try nodeID("endpoint")
            let heartbeat = HeartbeatState(generation: try i64("generation"), version: try i64("heartbeat version"))
            let count = try u16("application state count")
            guard count <= GossipLimits.applicationStates else {
                throw fail("implausible application state count \(count)")
            }
            var values: [ApplicationStateKey: VersionedValue] = [:]
            for _ in 0..<count {
                let key = ApplicationStateKey(rawValue: try string("application state key"))
                let value = try longString("application state value")
                values[key] = VersionedValue(value, version: try i64("application state version"))
            }
            out.append(EndpointState(node: node, heartbeat: heartbeat, applicationStates: values))
        }
        return out
    }
}
