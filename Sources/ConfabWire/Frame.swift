import ConfabEngine

/// One frame: header fields plus the raw body. The body is decoded into a `WireMessage` separately,
/// so a frame with an unknown or malformed body can still be answered on its stream.
package struct Frame: Hashable, Sendable {
    package var type: MessageType
    package var flags: FrameFlags
    package var streamID: UInt32
    package var body: [UInt8]
    package var version: UInt8

    package init(
        type: MessageType, flags: FrameFlags = [], streamID: UInt32, body: [UInt8],
        version: UInt8 = ProtocolVersion.current
    ) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.body = body
        self.version = version
    }

    package var header: FrameHeader {
        FrameHeader(version: version, type: type, flags: flags, streamID: streamID, bodyLength: UInt32(body.count))
    }

    /// Header, body and body CRC32C: the bytes to put on the wire.
    package func encoded() -> [UInt8] {
        var out = header.encoded()
        out.reserveCapacity(FrameHeader.size + body.count + FrameHeader.trailerSize)
        out.append(contentsOf: body)
        let crc = CRC32C.checksum(body)
        out.append(UInt8(truncatingIfNeeded: crc >> 24))
        out.append(UInt8(truncatingIfNeeded: crc >> 16))
        out.append(UInt8(truncatingIfNeeded: crc >> 8))
        out.append(UInt8(truncatingIfNeeded: crc))
        return out
    }
}
