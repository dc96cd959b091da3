import ConfabWire
import NIOCore

/// What a connection receives, on the node and on the client side alike (ConfabWire stays free of
/// NIO, so this glue around `FrameDecoder.parse` lives with the NIO connection code): a frame, a damaged frame to answer with an error, or a fatal
/// framing error after which the connection is closed.
package enum InboundFrame: Sendable {
    case frame(Frame)
    case damaged(streamID: UInt32, error: WireError)
    case fatal(streamID: UInt32, error: WireError)
}

/// Cuts the TCP byte stream into frames with `FrameDecoder` (the pure parser in ConfabWire). After
/// a fatal error it discards everything that follows: framing is lost and the connection closes.
package struct FrameChannelDecoder: ByteToMessageDecoder {
    package typealias InboundOut = InboundFrame

    let maxBodyBytes: Int
    private var failed = false

    package init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }

    package mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
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

    package mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A partial frame at EOF: the peer went away mid-frame; nothing to answer.
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
