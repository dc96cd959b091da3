/// A range of the ring `(start, end]`, exclusive start and inclusive end (Cassandra's `Range`).
///
/// When `start >= end` the range wraps past `Int64.max`; when `start == end` it is the whole ring
/// (the single range of a one-token ring).
public struct TokenRange: Hashable, Sendable, CustomStringConvertible {
    public var start: Token
    public var end: Token

    public init(start: Token, end: Token) {
        self.start = start
        self.end = end
    }

    /// The whole ring, as a one-token ring owns it.
    public static let fullRing = TokenRange(start: .minimum, end: .minimum)

    public var isFullRing: Bool { start == end }
    public var wraps: Bool { start >= end }

    public func contains(_ token: Token) -> Bool {
        if start == end { return true }
        if start < end { return start < token && token <= end }
        return token > start || token <= end
    }

    /// Number of tokens in the range, as a fraction of the ring (1.0 for the full ring).
    public var fraction: Double {
        if isFullRing { return 1.0 }
        return Double(start.distance(to: end)) / 18_446_744_073_709_551_616.0
    }

    /// Number of tokens in the range; 0 stands for 2^64 (the full ring).
    var width: UInt64 { start.distance(to: end) }

    /// The range as at most two non-wrapping pieces, in token order, for range scans over sorted
    /// storage: a wrapping `(s, e]` becomes `(Int64.min, e]` and `(s, Int64.max]`.
    public func unwrapped() -> [TokenRange] {
        if start < end { return [self] }
        var out: [TokenRange] = []
        if end != .minimum { out.append(TokenRange(start: .minimum, end: end)) }
        if start != .maximum { out.append(TokenRange(start: start, end: .maximum)) }
        return out
    }

    public var description: String { "(\(start), \(end)]" }
}
