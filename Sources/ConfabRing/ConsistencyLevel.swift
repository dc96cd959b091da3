/// How many replicas must answer before a request succeeds (Cassandra's levels).
public enum ConsistencyLevel: String, Sendable, Hashable, CaseIterable, Codable {
    case one = "ONE"
    case two = "TWO"
    case quorum = "QUORUM"
    case all = "ALL"

    /// Replicas that must acknowledge, for a replication factor.
    public func blockFor(replicationFactor rf: Int) -> Int {
        switch self {
        case .one: return 1
        case .two: return min(2, rf)
        case .quorum: return rf / 2 + 1
        case .all: return rf
        }
    }
}
