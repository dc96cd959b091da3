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
    private let last = Mutex<[Key: Int64]>([:])
    private let clock: any ChatClock
    let intervalMicros: Int64

    init(clock: any ChatClock, intervalMicros: Int64 = 2_500_000) {
        self.clock = clock
        self.intervalMicros = intervalMicros
    }

    /// True when this typing event should be relayed.
    func allow(userId: String, chatId: Int64) -> Bool {
        let now = clock.nowMicros()
        return last.withLock { m in
            let k = Key(userId: userId, chatId: chatId)
            if let t = m[k], now - t < intervalMicros { return false }
            if m.count > 100_000 { m = m.filter { now - $0.value < intervalMicros } }
            m[k] = now
            return true
        }
    }
}
