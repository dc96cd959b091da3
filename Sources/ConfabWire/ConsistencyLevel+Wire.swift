import ConfabRing

extension ConsistencyLevel {
    /// The level's byte on the wire: CQL's consistency codes (docs/node_protocol.md § Consistency).
    package var wireCode: UInt8 {
        switch self {
        case .one: return 0x01
        case .two: return 0x02
        case .quorum: return 0x04
        case .all: return 0x05
        }
    }

    /// The level for a wire code; `invalid` for codes CQL defines but Confab does not support
    /// (ANY, THREE, LOCAL_*) and for unknown codes.
    package init(wireCode: UInt8) throws(WireError) {
        switch wireCode {
        case 0x01: self = .one
        case 0x02: self = .two
        case 0x04: self = .quorum
        case 0x05: self = .all
        case 0x00: throw WireError(.invalid, "consistency ANY (0x00) is not supported; use ONE, TWO, QUORUM or ALL")
        case 0x03: throw WireError(.invalid, "consistency THREE (0x03) is not supported; use ONE, TWO, QUORUM or ALL")
        default:
            throw WireError(
                .invalid, "unknown consistency level code 0x\(String(wireCode, radix: 16)); use ONE, TWO, QUORUM or ALL"
            )
        }
    }

    /// Parses "one", "TWO", "quorum", "all" (any case), as users type them.
    package init?(named text: String) {
        self.init(rawValue: text.uppercased())
    }
}
