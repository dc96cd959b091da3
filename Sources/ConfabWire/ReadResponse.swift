/// The answer to a `ReadRequest`: the rows, or only their digest when the request asked for one.
public enum ReadResponse: Hashable, Sendable {
    case rows(ReplicaRows)
    case digest(Digest)

    /// 128 bits identifying a replica's answer (see `ReplicaRows.digest()`).
    public struct Digest: Hashable, Sendable, CustomStringConvertible {
        public var high: UInt64
        public var low: UInt64
        public init(high: UInt64, low: UInt64) {
            self.high = high
            self.low = low
        }
        public var description: String {
            func pad(_ v: UInt64) -> String {
                let s = String(v, radix: 16)
                return String(repeating: "0", count: 16 - s.count) + s
            }
            return pad(high) + pad(low)
        }
    }
}
