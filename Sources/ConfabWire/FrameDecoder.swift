import ConfabEngine

/// What the bytes at the front of a receive buffer hold.
package enum FrameParseResult: Sendable {
    /// Not a whole frame yet; read more and call again.
    case needMoreBytes
    /// A whole, intact frame of `length` bytes (header, body, trailer).
    case frame(Frame, length: Int)
    /// A whole frame of `length` bytes whose header is intact but whose body or flags are bad.
    /// Framing is not lost: answer `error` on `streamID`, drop `length` bytes and carry on.
    case damaged(streamID: UInt32, error: WireError, length: Int)
    /// The header itself is unusable (bad magic, header CRC, unknown version, oversized body).
    /// Framing is lost: answer `error` on `streamID` (0 when unknown) and close the connection.
    case fatal(streamID: UInt32, error: WireError)
}

/// Splits a byte stream into frames (docs/node_protocol.md § Frame layout). Pure and total: any input
/// yields one of the `FrameParseResult` cases — never a trap, and never more allocation than
/// `maxBodyBytes` for one body.
package enum FrameDecoder {
    package static func parse(
        _ bytes: UnsafeRawBufferPointer,
        maxBodyBytes: Int = FrameHeader.defaultMaxBodyBytes
    ) -> FrameParseResult {
        let available = bytes.count
        if available >= 1, bytes[0] != FrameHeader.magic.0 { return badMagic(bytes) }
        if available >= 2, bytes[1] != FrameHeader.magic.1 { return badMagic(bytes) }
        guard available >= FrameHeader.size else { return .needMoreBytes }

        let storedHeaderCRC = be32(bytes, at: 14)
        let headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<14]))
        guard storedHeaderCRC == headerCRC else {
            return .fatal(
                streamID: 0,
                error: WireError(
                    .corrupt,
                    "frame header checksum mismatch (stored 0x\(hex(storedHeaderCRC)), computed 0x\(hex(headerCRC))); the connection is out of sync"
                ))
        }
        let version = bytes[2]
        let type = MessageType(rawValue: bytes[3])
        let flags = FrameFlags(rawValue: bytes[4])
        let reserved = bytes[5]
        let streamID = be32(bytes, at: 6)
        let bodyLength = Int(be32(bytes, at: 10))
        guard version == ProtocolVersion.current else {
            return .fatal(
                streamID: streamID,
                error: WireError(
                    .protocolError,
                    "unsupported protocol version \(version); this peer speaks version \(ProtocolVersion.current)"))
        }
        guard bodyLength <= maxBodyBytes else {
            return .fatal(
                streamID: streamID,
                error: WireError(
                    .tooLarge,
                    "frame body of \(bodyLength) bytes exceeds the limit of \(maxBodyBytes) bytes (\(describeSize(maxBodyBytes))); split the request"
                ))
        }
        let total = FrameHeader.size + bodyLength + FrameHeader.trailerSize
        guard available >= total else { return .needMoreBytes }

        let body = UnsafeRawBufferPointer(rebasing: bytes[FrameHeader.size..<FrameHeader.size + bodyLength])
        let storedBodyCRC = be32(bytes, at: FrameHeader.size + bodyLength)
        let bodyCRC = CRC32C.checksum(body)
        guard storedBodyCRC == bodyCRC else {
            return .damaged(
                streamID: streamID,
                error: WireError(
                    .corrupt,
                    "\(type) frame body checksum mismatch (stored 0x\(hex(storedBodyCRC)), computed 0x\(hex(bodyCRC)))"),
                length: total)
        }
        guard reserved == 0, flags.subtracting(.known).isEmpty else {
            return .damaged(
                streamID: streamID,
                error: WireError(
                    .protocolError,
                    "unknown frame flags 0x\(hex(UInt32(flags.rawValue))) or reserved byte 0x\(hex(UInt32(reserved)))"),
                length: total)
        }
        return .frame(
            Frame(type: type, flags: flags, streamID: streamID, body: Array(body), version: version), length: total)
    }

    package static func parse(_ bytes: [UInt8], maxBodyBytes: Int = FrameHeader.defaultMaxBodyBytes) -> FrameParseResult
    {
        bytes.withUnsafeBytes { parse($0, maxBodyBytes: maxBodyBytes) }
    }

    private static func badMagic(_ bytes: UnsafeRawBufferPointer) -> FrameParseResult {
        let shown = bytes.prefix(4).map { String($0, radix: 16) }.joined(separator: " ")
        // 0x15/0x16 then 0x03: a TLS alert or handshake record.
        if bytes.count >= 2, bytes[0] == 0x15 || bytes[0] == 0x16, bytes[1] == 0x03 {
            return .fatal(
                streamID: 0,
                error: WireError(
                    .protocolError,
                    """
                    not a Confab frame but a TLS record (\(shown)): one side speaks TLS and the other does not. \
                    Nodes serve TLS when started with --tls-cert; clients then connect with --tls-ca (docs/security.md § TLS)
                    """))
        }
        return .fatal(
            streamID: 0,
            error: WireError(
                .protocolError,
                "not a Confab frame: expected magic 43 46 (\"CF\"), got \(shown); is the peer speaking the Confab protocol?"
            ))
    }

    private static func be32(_ b: UnsafeRawBufferPointer, at i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    private static func hex(_ v: UInt32) -> String { String(v, radix: 16) }

    private static func describeSize(_ n: Int) -> String {
        n >= 1 << 20 && n % (1 << 20) == 0 ? "\(n >> 20) MiB" : "\(n) bytes"
    }
}
