import ConfabEngine

/// The fixed 18-byte header in front of every frame (docs/node_protocol.md § Frame layout).
///
/// The header has its own CRC32C, so a damaged length is caught before the receiver waits for (or
/// allocates) a body that will never come; the body has a separate CRC32C in the 4-byte trailer.
public struct FrameHeader: Hashable, Sendable {
    /// "CF": the first two bytes of every frame.
    public static let magic: (UInt8, UInt8) = (0x43, 0x46)
    public static let size = 18
    /// The body CRC32C after the body.
    public static let trailerSize = 4
    /// The default cap on a body: 64 MiB (twice the engine's largest mutation).
    public static let defaultMaxBodyBytes = 64 << 20

    public var version: UInt8
    public var type: MessageType
    public var flags: FrameFlags
    /// Correlates a response with its request on a shared connection: a response carries its
    /// request's id. 0 is reserved for connection-level errors that belong to no request.
    public var streamID: UInt32
    public var bodyLength: UInt32

    public init(
        version: UInt8 = ProtocolVersion.current, type: MessageType, flags: FrameFlags = [], streamID: UInt32,
        bodyLength: UInt32
    ) {
        self.version = version
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.bodyLength = bodyLength
    }

    /// The 18 header bytes, header CRC included.
    public func encoded() -> [UInt8] {
        var w = WireWriter(capacity: Self.size)
        w.u8(Self.magic.0)
        w.u8(Self.magic.1)
        w.u8(version)
        w.u8(type.rawValue)
        w.u8(flags.rawValue)
        w.u8(0)
        w.u32(streamID)
        w.u32(bodyLength)
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }
}

/// Bits of the header's flags byte. A version-1 receiver rejects frames with unknown bits set.
public struct FrameFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Set on every frame that answers a request (HelloAck, Pong, WriteAck, ReadResponse, Error).
    public static let response = FrameFlags(rawValue: 0x01)

    public static let known: FrameFlags = [.response]
}
