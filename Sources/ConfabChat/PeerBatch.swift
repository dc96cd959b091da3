import Synchronization

/// Several peer-link frames in one WebSocket text frame (docs/chat_protocol.md, "/internal/ws"):
///
///     batch\n<byte count of frame 1 in UTF-8, decimal>\n<frame 1><byte count of frame 2>\n<frame 2>…
///
/// A frame written on its own costs each side a WebSocket frame (a mask key and masking on the
/// connecting side, an async write and a flush, a parse on the reader): profiling two chat servers
/// at 2,000 sends/s put about an eighth of the sending server in that per-frame work, three frames
/// per message. When frames are already waiting, the writer sends them as one. Each inner frame is
/// exactly what would have been sent alone, so the reader handles it the same way.
///
/// Only sent to a peer that said it reads batches: the connecting side sends `features batch`
/// after the handshake, and a receiver that reads batches answers the same. A server from before
/// batching ignores the line (an unknown frame), never answers, and so is never sent a batch.
enum PeerBatch {
    /// The line each side sends to say it reads batches.
    static let features = "features batch"

    /// Largest batch written (the reader of answers accepts 1 MiB); a frame larger than this is
    /// written on its own.
    static let maxBytes = 256 << 10

    private static let header = "batch\n"

    /// The text that carries `frames`: the frame itself when there is one, else their batch.
    static func text(of frames: [String]) -> String {
        frames.count == 1 ? frames[0] : encode(frames)
    }

    static func encode(_ frames: [String]) -> String {
        var out = header
        out.reserveCapacity(header.utf8.count + frames.reduce(0) { $0 + $1.utf8.count + 8 })
        for frame in frames {
            out += String(frame.utf8.count)
            out += "\n"
            out += frame
        }
        return out
    }

    /// The frames of a batch; nil when `text` is not a batch or is malformed (a length that is not
    /// a decimal, that runs past the end, or that splits a UTF-8 character).
    static func parse(_ text: String) -> [String]? {
        let bytes = text.utf8
        guard bytes.starts(with: header.utf8) else { return nil }
        var frames: [String] = []
        var i = bytes.index(bytes.startIndex, offsetBy: header.utf8.count)
        while i != bytes.endIndex {
            var length = 0
            var digits = 0
            while i != bytes.endIndex, bytes[i] != UInt8(ascii: "\n") {
                let d = bytes[i] &- UInt8(ascii: "0")
                guard d <= 9, digits < 10 else { return nil }
                length = length * 10 + Int(d)
                digits += 1
                i = bytes.index(after: i)
            }
            guard digits > 0, i != bytes.endIndex else { return nil }
            let start = bytes.index(after: i)
            guard let end = bytes.index(start, offsetBy: length, limitedBy: bytes.endIndex),
                let frame = String(text.utf8[start..<end])
            else { return nil }
            frames.append(frame)
            i = end
        }
        return frames
    }
}

/// Whether the other end of one peer-link connection said it reads batches: set by the task that
/// reads the connection, read by the one that writes it.
final class PeerBatchSwitch: Sendable {
    private let state = Mutex(false)

    var isOn: Bool { state.withLock { $0 } }

    func set(_ on: Bool) { state.withLock { $0 = on } }
}
