import ConfabWire

/// Judges one node's `status()` answer: does it show every node that should be running as up
/// and normal? Pure (no I/O), so the rule is tested apart from processes.
package enum RingReadiness {
    package enum Verdict: Hashable, Sendable {
        /// Every expected node is a member, normal and up.
        case ready
        /// The node answers as a lone node (its status lists only itself, without an address):
        /// a build whose node does not take part in a ring yet. Ready as far as it can be.
        case standalone
        /// Not yet; the reason reads after the asking node's address ("sees 127.0.0.1:7401 as DN").
        case waiting(String)
    }

    package static func judge(_ status: RingStatus, expected: [RingFile.Node]) -> Verdict {
        if status.nodes.count == 1, let only = status.nodes.first, only.host.isEmpty {
            if only.state == "normal", only.isUp { return .standalone }
            return .waiting("is itself \(RingStatusTable.code(only)), not UN")
        }
        for node in expected {
            guard let member = status.nodes.first(where: { matches($0, node) }) else {
                return .waiting("does not list \(node.addressText) (node \(node.index)) yet")
            }
            guard member.state == "normal", member.isUp else {
                return .waiting("sees \(node.addressText) (node \(node.index)) as \(RingStatusTable.code(member))")
            }
        }
        return .ready
    }

    /// A status member is a recorded node when their host ids match, or else their addresses.
    package static func matches(_ member: RingNodeStatus, _ node: RingFile.Node) -> Bool {
        if let id = node.id, !id.isEmpty, !member.id.isEmpty { return id == member.id }
        return member.host == node.host && Int(member.port) == node.port
    }
}
