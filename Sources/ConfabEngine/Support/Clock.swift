import Foundation
import Synchronization

/// The engine's source of time. Injected so TTL expiry, tombstone grace periods and periodic sync
/// are testable without sleeping.
public protocol EngineClock: Sendable {
    /// Microseconds since the Unix epoch: write timestamps.
    func nowMicros() -> Int64
}

extension EngineClock {
    /// Seconds since the Unix epoch: TTL expiry and tombstone purge times.
    public func nowSeconds() -> Int64 { nowMicros() / 1_000_000 }
}

/// Wall-clock time.
public struct SystemClock: EngineClock {
    public init() {}
    public func nowMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}

/// A clock that tests move by hand.
public final class ManualClock: EngineClock, Sendable {
    private let micros: Mutex<Int64>
    public init(micros: Int64 = 1_700_000_000_000_000) { self.micros = Mutex(micros) }
    public func nowMicros() -> Int64 { micros.withLock { $0 } }
    public func advance(seconds: Int64) { micros.withLock { $0 += seconds * 1_000_000 } }
    public func advance(micros delta: Int64) { micros.withLock { $0 += delta } }
}
