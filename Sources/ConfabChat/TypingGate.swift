import ConfabEngine
import Synchronization

/// Thins typing events: at most one per (user, chat) every `intervalMicros`. Devices send typing
/// every few seconds while the user types (docs/chat_protocol.md); a device that sends one per
/// keystroke costs the chat's other members no more than one that follows the rule.
final class TypingGate: Sendable {
    private struct Key: Hashable, Sendable {
        var userId: String
        var chatId: Int64
    }
    private struct State: Sendable {
        var last: [Key: Int64] = [:]
        var prune = PruneSchedule(floor: 100_000)
    }
    private let state = Mutex(State())
    private let clock: any ChatClock
    let intervalMicros: Int64

    init(clock: any ChatClock, intervalMicros: Int64 = 2_500_000) {
        self.clock = clock
        self.intervalMicros = intervalMicros
    }

    /// True when this typing event should be relayed.
    func allow(userId: String, chatId: Int64) -> Bool {
        let now = clock.nowMicros()
        return state.withLock { s in
            let k = Key(userId: userId, chatId: chatId)
            if let t = s.last[k], now - t < intervalMicros { return false }
            if s.prune.isDue(count: s.last.count) {
                s.last = s.last.filter { now - $0.value < intervalMicros }
                s.prune.swept(remaining: s.last.count)
            }
            s.last[k] = now
            return true
        }
    }
}
