import ConfabEngine

/// The fixed 18-byte header in front of every frame (docs/node_protocol.md § Frame layout).
///
/// The header has its own CRC32C, so a damaged length is caught before the receiver waits for (or
/// allocates) a body that will never come; the body has a separate CRC32C in the 4-byte trailer.
package struct FrameHeader: Hashable, Sendable {
    /// "CF": the first two bytes of every frame.
    package static let magic: (UInt8, UInt8) = (0x43, 0x46)
    package static let size = 18
    /// The body CRC32C after the body.
    package static let trailerSize = 4
    /// The default cap on a body: 64 MiB (twice the engine's largest mutation).
    package static let defaultMaxBodyBytes = 64 << 20

    package var version: UInt8
    package var type: MessageType
    package var flags: FrameFlags
    /// Correlates a response with its request on a shared connection: a response carries its
    /// request's id. 0 is reserved for connection-level errors that belong to no request.
    package var streamID: UInt32
    package var bodyLength: UInt32

    package init(
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
    package func encoded() -> [UInt8] {
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
package struct FrameFlags: OptionSet, Hashable, Sendable {
    package let rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Set on every frame that answers a request (HelloAck, Pong, WriteAck, ReadResponse, Error).
    package static let response = FrameFlags(rawValue: 0x01)

    package static let known: FrameFlags = [.response]
}
