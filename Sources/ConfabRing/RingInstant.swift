/// A point on the shell's monotonic clock, in nanoseconds from an arbitrary origin.
///
/// Every state machine in ConfabRing takes time as a parameter instead of reading a clock, so a
/// simulation can drive thousands of seeded runs deterministically. The shell passes
/// `ContinuousClock` readings converted with `RingInstant(nanoseconds:)`.
package struct RingInstant: Hashable, Comparable, Sendable, CustomStringConvertible {
    package var nanoseconds: Int64

    package init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    package static let zero = RingInstant(nanoseconds: 0)

    package static func < (a: RingInstant, b: RingInstant) -> Bool { a.nanoseconds < b.nanoseconds }

    package static func + (a: RingInstant, d: Duration) -> RingInstant {
        RingInstant(nanoseconds: a.nanoseconds &+ d.nanoseconds)
    }

    package static func - (a: RingInstant, d: Duration) -> RingInstant {
        RingInstant(nanoseconds: a.nanoseconds &- d.nanoseconds)
    }

    /// The time from `b` to `a`.
    package static func - (a: RingInstant, b: RingInstant) -> Duration {
        .nanoseconds(a.nanoseconds &- b.nanoseconds)
    }

    package var description: String { "\(Double(nanoseconds) / 1e9)s" }
}

extension Duration {
    /// Whole nanoseconds (attoseconds below a nanosecond are dropped).
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s &* 1_000_000_000 &+ atto / 1_000_000_000
    }

    var seconds: Double { Double(nanoseconds) / 1e9 }
}
