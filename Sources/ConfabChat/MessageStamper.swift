import ConfabEngine
import Synchronization

/// Stamps message times: max(now µs, last stamp + 1), so this server's stamps strictly increase
/// even if the wall clock steps back or two sends land in the same microsecond. Servers are not
/// coordinated: two servers may stamp the same µs, which is why messages order by (ts, messageId).
final class MessageStamper: Sendable {
    private let last = Mutex<Int64>(0)
    private let clock: any ChatClock

    init(clock: any ChatClock) { self.clock = clock }

    func next() -> Int64 {
        let now = clock.nowMicros()
        return last.withLock { l in
            l = max(now, l + 1)
            return l
        }
    }
}
