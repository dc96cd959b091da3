/// Reads protocol primitives from a message body with bounds checks: every read past the end or
/// over a limit throws a `protocolError` naming the message and field, never traps.
struct WireReader {
    private let bytes: [UInt8]
    private(set) var offset: Int = 0
    let context: String

    init(_ bytes: [UInt8], context: String) {
        self.bytes = bytes
        self.context = context
    }

    var remaining: Int { bytes.count - offset }
    var isAtEnd: Bool { offset == bytes.count }

    func fail(_ what: String) -> WireError {
        WireError(.protocolError, "malformed \(context): \(what) at body offset \(offset)")
    }

    private mutating func take(_ n: Int, _ field: String) throws(WireError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else {
            throw fail("truncated \(field) (needs \(n) bytes, \(remaining) left)")
        }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    mutating func u8(_ field: String) throws(WireError) -> UInt8 { try take(1, field).first! }

    /// Exactly `count` bytes with no length prefix (nonces, MACs).
    mutating func fixedBytes(_ count: Int, _ field: String) throws(WireError) -> [UInt8] {
        Array(try take(count, field))
    }

    mutating func u16(_ field: String) throws(WireError) -> UInt16 {
        try take(2, field).reduce(0) { $0 << 8 | UInt16($1) }
    }

    mutating func u32(_ field: String) throws(WireError) -> UInt32 {
        try take(4, field).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func u64(_ field: String) throws(WireError) -> UInt64 {
        try take(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func i64(_ field: String) throws(WireError) -> Int64 { Int64(bitPattern: try u64(field)) }

    mutating func shortBytes(_ field: String) throws(WireError) -> [UInt8] {
        let n = Int(try u16("\(field) length"))
        return Array(try take(n, field))
    }

    mutating func string(_ field: String) throws(WireError) -> String {
        let raw = try shortBytes(field)
        guard let s = String(validating: raw, as: UTF8.self) else { throw fail("\(field) is not UTF-8") }
        return s
    }

    mutating func longBytes(_ field: String, max: Int = Int(UInt32.max)) throws(WireError) -> [UInt8] {
        let n = Int(try u32("\(field) length"))
        guard n <= max else { throw fail("\(field) of \(n) bytes exceeds \(max)") }
        return Array(try take(n, field))
    }

    mutating func longString(_ field: String) throws(WireError) -> String {
        let raw = try longBytes(field)
        guard let s = String(validating: raw, as: UTF8.self) else { throw fail("\(field) is not UTF-8") }
        return s
    }

    func expectEnd() throws(WireError) {
        guard isAtEnd else { throw fail("\(remaining) trailing bytes") }
    }
}
