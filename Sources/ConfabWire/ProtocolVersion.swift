/// The wire protocol's version, sent in every frame header; see docs/protocol.md.
public enum ProtocolVersion {
    public static let current: UInt8 = 1
}
