import ConfabEngine

/// A position on the ring: a signed 64-bit Murmur3 token, as Cassandra's Murmur3Partitioner uses.
///
/// Tokens order as signed integers; the ring wraps from `Int64.max` back to `Int64.min`.
/// `Int64.min` is the partitioner's minimum token and is never the token of a key (Cassandra maps a
/// hash of `Long.MIN_VALUE` to `Long.MAX_VALUE`; so does `Token(partitionKey:)`), which is why a
/// range `(Int64.min, t]` covers every key up to `t`.
public struct Token: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int64

    public init(_ value: Int64) { self.value = value }

    /// The token of a serialized partition key (for chats: the chatId as 8 bytes big-endian).
    public init(partitionKey: some Collection<UInt8>) {
        let t = Murmur3.token(partitionKey)
        value = t == .min ? .max : t
    }

    public static let minimum = Token(.min)
    public static let maximum = Token(.max)

    public static func < (a: Token, b: Token) -> Bool { a.value < b.value }

    public var description: String { String(value) }

    /// Distance clockwise from `self` to `other`, modulo 2^64 (0 when equal).
    func distance(to other: Token) -> UInt64 {
        UInt64(bitPattern: other.value &- value)
    }

    /// The token `offset` steps clockwise from `self`, wrapping.
    func advanced(by offset: UInt64) -> Token {
        Token(value &+ Int64(bitPattern: offset))
    }
}
