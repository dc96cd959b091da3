import ConfabWire
import NIOCore

/// What the client's channel handler receives (mirrors the node's decoder; ConfabWire stays free
/// of NIO, so each NIO shell has its own few lines of glue around `FrameDecoder.parse`).
enum ClientInbound: Sendable {
    case frame(Frame)
    case damaged(streamID: UInt32, error: WireError)
    case fatal(streamID: UInt32, error: WireError)
}

struct ClientFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ClientInbound

    let maxBodyBytes: Int
    private var failed = false

    init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if failed {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let maxBodyBytes = self.maxBodyBytes
        switch buffer.withUnsafeReadableBytes({ FrameDecoder.parse($0, maxBodyBytes: maxBodyBytes) }) {
        case .needMoreBytes:
            return .needMoreData
        case .frame(let frame, let length):
            buffer.moveReaderIndex(forwardBy: length)
            context.fireChannelRead(wrapInboundOut(.frame(frame)))
            return .continue
        case .damaged(let streamID, let error, let length):
            buffer.moveReaderIndex(forwardBy: length)
            context.fireChannelRead(wrapInboundOut(.damaged(streamID: streamID, error: error)))
            return .continue
        case .fatal(let streamID, let error):
            failed = true
            buffer.moveReaderIndex(to: buffer.writerIndex)
            context.fireChannelRead(wrapInboundOut(.fatal(streamID: streamID, error: error)))
            return .needMoreData
        }
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
