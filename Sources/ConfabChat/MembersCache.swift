import ConfabEngine
import Synchronization

/// Short-lived memory of chat members and of each user's contacts (everyone they share a chat
/// with), for the events that are not worth a QUORUM read each: typing and presence. Sends,
/// history and membership changes always read the ring. Entries live `ttlMicros`; this server's
/// own membership changes drop them at once, other servers' show up when they expire.
final class MembersCache: Sendable {
    private struct Entry<V: Sendable>: Sendable {
        var value: V
        var at: Int64
    }

    private struct State: Sendable {
        var members: [Int64: Entry<Set<String>>] = [:]
        var contacts: [String: Entry<Set<String>>] = [:]
        var pruneMembers = PruneSchedule(floor: 100_000)
        var pruneContacts = PruneSchedule(floor: 100_000)
    }

    private let state = Mutex(State())
    private let clock: any ChatClock
    let ttlMicros: Int64

    init(clock: any ChatClock, ttlMicros: Int64 = 10_000_000) {
        self.clock = clock
        self.ttlMicros = ttlMicros
    }

    func members(_ chatId: Int64) -> Set<String>? {
        let now = clock.nowMicros()
        return state.withLock { s in
            guard let e = s.members[chatId], now - e.at < ttlMicros else { return nil }
            return e.value
        }
    }

    func setMembers(_ chatId: Int64, _ members: Set<String>) {
        let now = clock.nowMicros()
        state.withLock { s in
            s.members[chatId] = Entry(value: members, at: now)
            if s.pruneMembers.isDue(count: s.members.count) {
                s.members = s.members.filter { now - $0.value.at < ttlMicros }
                s.pruneMembers.swept(remaining: s.members.count)
            }
        }
    }

    func contacts(_ userId: String) -> Set<String>? {
        let now = clock.nowMicros()
        return state.withLock { s in
            guard let e = s.contacts[userId], now - e.at < ttlMicros else { return nil }
            return e.value
        }
    }

    func setContacts(_ userId: String, _ contacts: Set<String>) {
        let now = clock.nowMicros()
        state.withLock { s in
            s.contacts[userId] = Entry(value: contacts, at: now)
            if s.pruneContacts.isDue(count: s.contacts.count) {
                s.contacts = s.contacts.filter { now - $0.value.at < ttlMicros }
                s.pruneContacts.swept(remaining: s.contacts.count)
            }
        }
    }

    /// Forgets a chat's members and the contacts of everyone in `users` (after a membership change).
    func invalidate(chatId: Int64, users: some Sequence<String>) {
        state.withLock { s in
            s.members[chatId] = nil
            for u in users { s.contacts[u] = nil }
        }
    }
}
