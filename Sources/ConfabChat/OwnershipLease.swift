/// The timings of chat-server liveness and ownership leases, all derived from one figure: how long
/// a silent server stays in the others' live set (`--heartbeat-ttl`). docs/chat_ordering.md
/// § Leases gives the argument; the relations it needs are `lease + requestLimit + margin ≤
/// silence` and `lease > heartbeat interval + requestLimit`.
struct LeaseTimings: Sendable, Equatable {
    /// D: a peer whose heartbeat value has not changed for this long (on the observer's monotonic
    /// clock) has left the live set.
    var silenceNanos: Int64
    /// T: a heartbeat or refresh that took longer than this does not extend the lease.
    var requestLimitNanos: Int64
    /// Allowance for clock rates and scheduling between servers.
    var marginNanos: Int64

    /// L: how long after it started a successful heartbeat (or refresh) keeps the lease.
    var leaseNanos: Int64
    /// After a lease period begins, how long before this server may open a chat when others exist:
    /// every other server's lease that did not know this one has run out by then.
    var gateNanos: Int64

    init(silenceNanos: Int64) {
        self.silenceNanos = silenceNanos
        requestLimitNanos = silenceNanos / 5
        marginNanos = silenceNanos / 10
        leaseNanos = silenceNanos - requestLimitNanos - marginNanos
        gateNanos = leaseNanos + marginNanos
    }
}

/// A server's own lease as a pure state machine: fed the outcome of its heartbeats and refreshes
/// with monotonic instants (ns), it says whether the server may open chats and acknowledge a
/// batch without the fence read. It does no I/O and reads no clock.
///
/// A *period* begins with a heartbeat that completes after the previous lease could have let the
/// others declare this server dead; a chat opened in an earlier period is acknowledged with the
/// fence read again until it is reopened.
struct OwnershipLease: Sendable {
    let timings: LeaseTimings
    /// 0: no period yet.
    private(set) var period: UInt64 = 0
    /// When the current period's first heartbeat completed.
    private(set) var periodStart: Int64 = 0
    /// Start of the newest heartbeat that succeeded within the request limit.
    private(set) var lastBeatStart: Int64?
    /// Start of the newest refresh that succeeded within the request limit.
    private(set) var lastRefreshStart: Int64?
    /// A refresh that started in this period saw no other server's row: nobody else can hold a
    /// lease this server's gate would have to wait out.
    private(set) var alone = false
    /// Given up for good (graceful shutdown): nothing is opened or acknowledged without a fence.
    private(set) var revoked = false

    init(timings: LeaseTimings) { self.timings = timings }

    mutating func beatSucceeded(startedAt start: Int64, finishedAt end: Int64) {
        guard !revoked, end - start <= timings.requestLimitNanos else { return }
        if period > 0, let last = lastBeatStart,
            end < last + timings.silenceNanos - timings.marginNanos
        {
            // Nobody saw this server silent for `silence`: the period goes on.
            lastBeatStart = max(last, start)
            return
        }
        period += 1
        periodStart = end
        lastBeatStart = start
        alone = false
    }

    mutating func refreshSucceeded(startedAt start: Int64, finishedAt end: Int64, othersPresent: Bool) {
        guard !revoked, end - start <= timings.requestLimitNanos else { return }
        lastRefreshStart = max(lastRefreshStart ?? start, start)
        if period > 0, start >= periodStart, !othersPresent { alone = true }
    }

    mutating func revoke() { revoked = true }

    /// The lease holds now: the last in-time heartbeat and refresh both started less than a lease
    /// ago, so every other server still counts this one live and this one knows every server
    /// whose gate has passed.
    func holds(now: Int64) -> Bool {
        guard !revoked, period > 0, let beat = lastBeatStart, let refresh = lastRefreshStart else { return false }
        return now < beat + timings.leaseNanos && now < refresh + timings.leaseNanos
    }

    /// May open a chat now (its header write, end read and tombstone).
    func mayOpen(now: Int64) -> Bool {
        holds(now: now) && (alone || now >= periodStart + timings.gateNanos)
    }

    /// The earliest instant opening could become allowed without another heartbeat or refresh
    /// (nil when it needs one).
    func openingAllowedAt(now: Int64) -> Int64? {
        guard holds(now: now) else { return nil }
        return alone ? now : max(now, periodStart + timings.gateNanos)
    }
}

/// What a chat's opening (or its last successful fence) was made under: the lease period and the
/// version of this server's view of the live set. A batch is acknowledged without the fence only
/// while both are unchanged: a view change may have given the chat to another server and back
/// (that server may have opened it in between), and a new period means the others may have
/// declared this server dead.
struct LeaseStamp: Sendable, Hashable {
    var period: UInt64
    var viewVersion: UInt64
}

extension OwnershipLease {
    /// The stamp a chat opened (or fenced) now gets: only when this server owns it in view
    /// `viewVersion` and may open chats now. A fence proves nobody had opened the chat before it;
    /// it does not stop a server that declared this one dead from opening it right after, so a
    /// period still within its gate gets no stamp.
    func stamp(viewVersion: UInt64, owns: Bool, now: Int64) -> LeaseStamp? {
        owns && mayOpen(now: now) ? LeaseStamp(period: period, viewVersion: viewVersion) : nil
    }

    /// May acknowledge, without the fence read, a batch of a chat stamped `stamp`.
    func mayAcknowledge(_ stamp: LeaseStamp, viewVersion: UInt64, owns: Bool, now: Int64) -> Bool {
        owns && stamp == LeaseStamp(period: period, viewVersion: viewVersion) && holds(now: now)
    }

    /// May go on opening a chat stamped `stamp` (after its header write, before its end read).
    func mayContinueOpening(_ stamp: LeaseStamp, viewVersion: UInt64, owns: Bool, now: Int64) -> Bool {
        owns && stamp == LeaseStamp(period: period, viewVersion: viewVersion) && mayOpen(now: now)
    }
}

/// The others' liveness as this server observes it: a server is live while its heartbeat value
/// keeps changing. Measured on this server's monotonic clock only, so no wall clock, skewed or
/// stepped, decides who is live.
struct PeerLiveness: Sendable {
    let timings: LeaseTimings
    private var seen: [String: (beat: Int64, since: Int64)] = [:]

    init(timings: LeaseTimings) { self.timings = timings }

    /// The live set a server works with: the others found live, itself while it heartbeats, and
    /// itself alone rather than nobody.
    static func view(others: [String: String], selfId: String, selfAddress: String, selfLive: Bool) -> [String: String]
    {
        var live = others
        live[selfId] = selfLive ? selfAddress : nil
        if live.isEmpty { live[selfId] = selfAddress }
        return live
    }

    /// Records a read of the rows (id → heartbeat value) that started at `start` and finished at
    /// `end`, and returns the ids live after it. A value first read at `end` counts from `end`;
    /// a server is dropped once a read *started* `silence` after that still shows the same value.
    mutating func observe(_ beats: [String: Int64], startedAt start: Int64, finishedAt end: Int64) -> Set<String> {
        var next: [String: (beat: Int64, since: Int64)] = [:]
        var live = Set<String>()
        for (id, beat) in beats {
            let since = seen[id].flatMap { $0.beat == beat ? $0.since : nil } ?? end
            next[id] = (beat, since)
            if start - since < timings.silenceNanos { live.insert(id) }
        }
        seen = next
        return live
    }
}
