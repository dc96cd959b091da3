/// Builds clustering keys whose bytes sort (memcmp) in the order of their typed components, so the
/// engine compares raw bytes and never decodes a key to order it. Chat messages cluster by
/// (timestamp, messageId).
///
/// Component encodings (each starts with a type byte so dump tools can print keys):
///
///     0x10 int64   8 bytes big-endian with the sign bit flipped
///     0x20 bytes   the bytes with 0x00 escaped as 0x00 0xFF, then 0x00 0x00
///
/// A prefix of components is a valid bound: "timestamp < T" is every key below `[int64 T]`.
public struct ClusteringKey: Hashable, Sendable {
    public private(set) var bytes: [UInt8]

    public init() { bytes = [] }
    public init(encoded: [UInt8]) { bytes = encoded }

    public enum Component: Hashable, Sendable, CustomStringConvertible {
        case int64(Int64)
        case bytes([UInt8])

        public var description: String {
            switch self {
            case .int64(let v): return String(v)
            case .bytes(let b):
                if let s = String(validating: b, as: UTF8.self), s.allSatisfy({ !$0.isNewline && $0.isASCII }) {
                    return s
                }
                return "0x" + b.map { String($0, radix: 16).leftPad(2) }.joined()
            }
        }
    }

    public init(_ components: [Component]) {
        bytes = []
        for c in components { append(c) }
    }

    public mutating func append(_ component: Component) {
        switch component {
        case .int64(let v):
            bytes.append(0x10)
            bytes.appendBE64(UInt64(bitPattern: v) ^ (1 << 63))
        case .bytes(let b):
            bytes.append(0x20)
            for x in b {
                bytes.append(x)
                if x == 0 { bytes.append(0xFF) }
            }
            bytes.append(0)
            bytes.append(0)
        }
    }

    /// Decodes the components; nil if the bytes are not a well-formed clustering key.
    public static func components(of bytes: some Collection<UInt8>) -> [Component]? {
        let b = Array(bytes)
        var i = 0
        var out: [Component] = []
        while i < b.count {
            switch b[i] {
            case 0x10:
                guard i + 9 <= b.count else { return nil }
                var v: UInt64 = 0
                for j in 1...8 { v = v << 8 | UInt64(b[i + j]) }
                out.append(.int64(Int64(bitPattern: v ^ (1 << 63))))
                i += 9
            case 0x20:
                i += 1
                var value: [UInt8] = []
                while true {
                    guard i < b.count else { return nil }
                    if b[i] == 0 {
                        guard i + 1 < b.count else { return nil }
                        if b[i + 1] == 0xFF {
                            value.append(0)
                            i += 2
                            continue
                        }
                        if b[i + 1] == 0 {
                            i += 2
                            break
                        }
                        return nil
                    }
                    value.append(b[i])
                    i += 1
                }
                out.append(.bytes(value))
            default:
                return nil
            }
        }
        return out
    }

    /// Human-readable form, "(1700000000000000, msg-1)", or hex if it does not decode.
    public static func describe(_ bytes: some Collection<UInt8>) -> String {
        if bytes.isEmpty { return "(partition header)" }
        guard let comps = components(of: bytes) else {
            return "0x" + bytes.map { String($0, radix: 16).leftPad(2) }.joined()
        }
        return "(" + comps.map(\.description).joined(separator: ", ") + ")"
    }
}

extension String {
    func leftPad(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
