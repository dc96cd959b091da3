import ConfabTestSupport
import Testing

@testable import ConfabChat

/// Ownership leases (docs/chat_ordering.md § Leases): a chat's owner acknowledges a batch without
/// the fence read only while no other server can have opened the chat. The seeded simulation
/// below runs the real `OwnershipLease`, `PeerLiveness`, `ServerHashing` and the sequencer's
/// stamp rules for three chat servers over a model of the ring (writes land and reads look at
/// some instant inside the request's time), with slow, failing and lost heartbeats and refreshes,
/// pauses, crashes, restarts, graceful stops and joins, and checks every lease acknowledgement
/// against every opening of the same chat by another server.
struct OwnershipLeaseTests {
    @Test(arguments: 0..<4)
    func noServerOpensAChatWhileAnotherAcknowledgesItUnderItsLease(batch: Int) {
        var opens = 0
        var leaseAcks = 0
        var fences = 0
        for n in 0..<50 {
            let seed = UInt64(batch * 50 + n) &* 0x9E37_79B9_7F4A_7C15 &+ 1
            var sim = LeaseSimulation(seed: seed, timings: LeaseTimings(silenceNanos: 2_000_000_000))
            sim.run(seconds: 60)
            #expect(sim.violations.isEmpty, "seed \(seed): \(sim.violations.prefix(3))")
            opens += sim.opens
            leaseAcks += sim.leaseAcks
            fences += sim.fences
        }
        // The runs exercise all three paths, and most batches skip the fence.
        #expect(opens > 50 && fences > 50 && leaseAcks > fences, "opens \(opens), acks \(leaseAcks), fences \(fences)")
    }

    /// The simulation can fail: with no gate after a lease period begins, a joining server opens
    /// chats the others still acknowledge under their leases.
    @Test func withoutTheGateAJoiningServerOpensUnderAnothersLease() {
        var timings = LeaseTimings(silenceNanos: 2_000_000_000)
        timings.gateNanos = 0
        #expect(Self.runsWithViolations(timings, salt: 7) > 0)
    }

    /// And so can the other relation: a silence shorter than lease + request limit lets a server
    /// be declared dead while it still acknowledges.
    @Test func aSilenceShorterThanTheLeaseIsCaught() {
        var timings = LeaseTimings(silenceNanos: 2_000_000_000)
        timings.leaseNanos = timings.silenceNanos + timings.silenceNanos / 2
        #expect(Self.runsWithViolations(timings, salt: 11) > 0)
    }

    /// Of 40 seeded 60 s simulations with `timings`, how many found a violation.
    static func runsWithViolations(_ timings: LeaseTimings, salt: UInt64) -> Int {
        (0..<40).filter { n in
            var sim = LeaseSimulation(seed: UInt64(n) &* 0xD1B5_4A32_D192_ED03 &+ salt, timings: timings)
            sim.run(seconds: 60)
            return !sim.violations.isEmpty
        }.count
    }

    @Test func aLeasePeriodBeginsWithTheFirstHeartbeatAndOpensWaitForTheGate() {
        let t = LeaseTimings(silenceNanos: 10_000_000_000)
        var lease = OwnershipLease(timings: t)
        #expect(!lease.holds(now: 0))
        lease.beatSucceeded(startedAt: 0, finishedAt: 10_000_000)
        #expect(!lease.holds(now: 20_000_000), "no refresh yet")
        lease.refreshSucceeded(startedAt: 20_000_000, finishedAt: 30_000_000, othersPresent: true)
        #expect(lease.holds(now: 40_000_000) && !lease.mayOpen(now: 40_000_000))
        #expect(lease.openingAllowedAt(now: 40_000_000) == 10_000_000 + t.gateNanos)
        // Heartbeats keep it; the gate passes.
        var now: Int64 = 0
        while now < 10_000_000 + t.gateNanos {
            now += 3_000_000_000
            lease.beatSucceeded(startedAt: now, finishedAt: now + 1_000_000)
            lease.refreshSucceeded(startedAt: now, finishedAt: now + 1_000_000, othersPresent: true)
        }
        #expect(lease.mayOpen(now: now + 2_000_000) && lease.period == 1)
        // A heartbeat slower than the request limit does not extend it.
        lease.beatSucceeded(startedAt: now + 3_000_000_000, finishedAt: now + 3_000_000_000 + t.requestLimitNanos + 1)
        #expect(!lease.holds(now: now + t.leaseNanos + 1))
        // After a silence the others may have taken for death, the next heartbeat starts a new period.
        let later = now + t.silenceNanos
        lease.beatSucceeded(startedAt: later, finishedAt: later + 1_000_000)
        #expect(lease.period == 2)
    }

    @Test func aServerAloneOpensAtOnceAndARevokedLeaseHoldsNothing() {
        var lease = OwnershipLease(timings: LeaseTimings(silenceNanos: 10_000_000_000))
        lease.beatSucceeded(startedAt: 0, finishedAt: 5)
        lease.refreshSucceeded(startedAt: 10, finishedAt: 20, othersPresent: false)
        #expect(lease.mayOpen(now: 30))
        lease.revoke()
        #expect(!lease.holds(now: 31) && !lease.mayOpen(now: 31))
    }

    @Test func aPeerIsLiveWhileItsHeartbeatValueChanges() {
        let t = LeaseTimings(silenceNanos: 10_000_000_000)
        var live = PeerLiveness(timings: t)
        #expect(live.observe(["a": 1, "b": 7], startedAt: 0, finishedAt: 1) == ["a", "b"])
        #expect(live.observe(["a": 2, "b": 7], startedAt: 9_000_000_000, finishedAt: 9_000_000_001) == ["a", "b"])
        #expect(live.observe(["a": 2, "b": 7], startedAt: 10_000_000_001, finishedAt: 10_000_000_002) == ["a"])
        #expect(live.observe(["b": 8], startedAt: 10_000_000_003, finishedAt: 10_000_000_004) == ["b"])
    }
}

/// Three chat servers' directories and sequencer stamp rules over a model of the ring, in 5 ms
/// ticks of simulated monotonic time.
struct LeaseSimulation {
    let timings: LeaseTimings
    var rng: SplitMix64
    let tick: Int64 = 5_000_000
    let chats: [Int64] = Array(1...8)
    let ids = ["s0", "s1", "s2"]

    // The ring: heartbeat rows, writes still travelling, reads' snapshots.
    var rows: [String: Int64] = [:]
    var travelling: [(landsAt: Int64, id: String, beat: Int64?)] = []

    final class Server {
        let id: String
        let incarnation: Int
        var lease: OwnershipLease
        var liveness: PeerLiveness
        var hashing = ServerHashing(servers: [:])
        var viewVersion: UInt64 = 0
        var lastBeat: Int64?
        var running = true
        var pausedUntil: Int64 = 0
        var nextBeat: Int64
        var nextRefresh: Int64
        /// The request in flight: a heartbeat or a refresh, when it completes, whether it succeeds,
        /// and (a refresh) the instant it reads at and what it saw.
        var op: (beat: Bool, start: Int64, completes: Int64, ok: Bool, readsAt: Int64, seen: [String: Int64]?)?
        /// Top of the run loop: the refresh check uses the same `now` as the heartbeat's.
        var loopNow: Int64 = 0
        var refreshDue = false
        /// Per chat: opened at, stamp, stamp since.
        var lanes: [Int64: (openedAt: Int64, stamp: LeaseStamp?, since: Int64)] = [:]
        /// Per chat, an opening in flight: its header read began at `start`, its header write
        /// completes at `completes`, and then `ChatSequencer.open` checks `mayContinueOpening`.
        var opening: [Int64: (start: Int64, completes: Int64, stamp: LeaseStamp)] = [:]

        init(id: String, incarnation: Int, timings: LeaseTimings, now: Int64) {
            self.id = id
            self.incarnation = incarnation
            lease = OwnershipLease(timings: timings)
            liveness = PeerLiveness(timings: timings)
            nextBeat = now
            nextRefresh = now
            setView([id: id])
        }

        func setView(_ live: [String: String]) {
            guard viewVersion == 0 || hashing.servers != live else { return }
            hashing = ServerHashing(servers: live)
            viewVersion &+= 1
        }

        func owns(_ chat: Int64) -> Bool { (hashing.owner(of: "#\(chat)") ?? id) == id }
        func isLive(_ now: Int64, _ t: LeaseTimings) -> Bool {
            lastBeat.map { now - $0 < t.silenceNanos - t.marginNanos } ?? false
        }
    }

    var servers: [Server] = []
    var openings: [Int64: [(at: Int64, server: ObjectIdentifier, note: String)]] = [:]
    /// Per chat, every opening that went on past its header write: from its header read to the
    /// end of its header write. Two of them overlapping could read the same header and draw the
    /// same epoch, and then place messages at the same seqs (docs/chat_ordering.md § Leases).
    var completedOpenings: [Int64: [(start: Int64, end: Int64, server: ObjectIdentifier, note: String)]] = [:]
    var violations: [String] = []
    var opens = 0
    var leaseAcks = 0
    var fences = 0
    var nextIncarnation = 0
    var nextEventAt: Int64 = 0

    init(seed: UInt64, timings: LeaseTimings) {
        self.timings = timings
        rng = SplitMix64(seed: seed)
    }

    mutating func chance(_ p: Double) -> Bool { Double(rng.next() % 1_000_000) / 1_000_000 < p }
    mutating func between(_ lo: Int64, _ hi: Int64) -> Int64 {
        hi <= lo ? lo : lo + Int64(rng.next() % UInt64(hi - lo))
    }

    mutating func start(_ id: String, now: Int64) {
        nextIncarnation += 1
        servers.append(Server(id: id, incarnation: nextIncarnation, timings: timings, now: now))
    }

    /// How long a request takes: mostly quick, sometimes slow, sometimes past the request limit.
    mutating func duration() -> Int64 {
        let r = rng.next() % 100
        if r < 88 { return between(1_000_000, 40_000_000) }
        if r < 97 { return between(40_000_000, timings.requestLimitNanos + 300_000_000) }
        return between(timings.requestLimitNanos, 2 * timings.silenceNanos)
    }

    mutating func run(seconds: Int64) {
        let end = seconds * 1_000_000_000
        start("s0", now: 0)
        var joinAt: [String: Int64] = ["s1": between(0, 10_000_000_000), "s2": between(0, 25_000_000_000)]
        nextEventAt = between(3_000_000_000, 8_000_000_000)
        var now: Int64 = 0
        while now < end {
            for (id, at) in joinAt where at <= now {
                start(id, now: now)
                joinAt[id] = nil
            }
            for (at, id) in pendingStarts where at <= now && !servers.contains(where: { $0.id == id && $0.running }) {
                start(id, now: now)
            }
            pendingStarts.removeAll { $0.0 <= now }
            if now >= nextEventAt { disturb(now) }
            // The ring: writes land, reads look.
            travelling.sort { $0.landsAt < $1.landsAt }
            while let w = travelling.first, w.landsAt <= now {
                travelling.removeFirst()
                rows[w.id] = w.beat
            }
            for s in servers where s.running {
                if var op = s.op, op.seen == nil, !op.beat, op.readsAt <= now {
                    op.seen = rows
                    s.op = op
                }
            }
            for s in servers where s.running && s.pausedUntil <= now {
                step(s, now)
                finishOpenings(s, now)
            }
            // Sends arrive at any server and go to the chat's owner in that server's view: a
            // server gets batches of a chat only while someone's view names it.
            let up = servers.filter { $0.running }
            for chat in chats where !up.isEmpty && chance(0.06) {
                let via = up[Int(rng.next() % UInt64(up.count))]
                guard via.pausedUntil <= now else { continue }
                let owner = via.hashing.owner(of: "#\(chat)") ?? via.id
                if let s = up.last(where: { $0.id == owner }), s.pausedUntil <= now { batch(s, chat, now) }
            }
            now += tick
        }
    }

    /// The directory's run loop of one server (ServerDirectory.run), one tick.
    mutating func step(_ s: Server, _ now: Int64) {
        if let op = s.op {
            guard op.completes <= now else { return }
            s.op = nil
            if op.beat {
                if op.ok {
                    s.lastBeat = op.start
                    s.lease.beatSucceeded(startedAt: op.start, finishedAt: now)
                }
            } else if op.ok, let seen = op.seen {
                let others = seen.filter { $0.key != s.id }
                let live = s.liveness.observe(others, startedAt: op.start, finishedAt: now)
                s.lease.refreshSucceeded(startedAt: op.start, finishedAt: now, othersPresent: !others.isEmpty)
                s.setView(
                    PeerLiveness.view(
                        others: Dictionary(uniqueKeysWithValues: live.map { ($0, $0) }), selfId: s.id,
                        selfAddress: s.id, selfLive: s.isLive(now, timings)))
            } else if !s.isLive(now, timings) {
                var v = s.hashing.servers
                v[s.id] = nil
                if !v.isEmpty { s.setView(v) }
            }
            if op.beat {
                s.nextBeat = s.loopNow + timings.silenceNanos / 3
                if s.refreshDue { startRefresh(s, now) }
            } else {
                s.nextRefresh = s.loopNow + timings.silenceNanos / 4
            }
            return
        }
        guard now >= min(s.nextBeat, s.nextRefresh) else { return }
        s.loopNow = now
        s.refreshDue = now >= s.nextRefresh
        if now >= s.nextBeat {
            let d = duration()
            let fails = chance(0.03)
            let beat = Int64(bitPattern: rng.next())
            // A failed write may still land, at any time; a successful one lands within its time.
            if !fails || chance(0.5) {
                travelling.append((between(now, now + (fails ? 2 * timings.silenceNanos : d) + 1), s.id, beat))
            }
            s.op = (true, now, now + (fails ? timings.silenceNanos / 2 : d), !fails, 0, nil)
        } else {
            startRefresh(s, now)
        }
    }

    mutating func startRefresh(_ s: Server, _ now: Int64) {
        let d = duration()
        let fails = chance(0.03)
        s.op = (false, now, now + (fails ? timings.silenceNanos / 2 : d), !fails, between(now, now + d + 1), nil)
        s.refreshDue = false
    }

    /// One batch of `chat` on `s`, as ChatSequencer does it: open when owned and allowed; then
    /// acknowledge under the lease, or fence (and re-stamp when the fence holds).
    mutating func batch(_ s: Server, _ chat: Int64, _ now: Int64) {
        let me = ObjectIdentifier(s)
        guard let lane = s.lanes[chat] else {
            guard s.opening[chat] == nil, s.owns(chat), s.lease.mayOpen(now: now),
                let stamp = s.lease.stamp(viewVersion: s.viewVersion, owns: true, now: now)
            else { return }
            // The header read and the header write, each as slow as any request.
            s.opening[chat] = (now, now + duration() + duration(), stamp)
            return
        }
        if let stamp = lane.stamp,
            s.lease.mayAcknowledge(stamp, viewVersion: s.viewVersion, owns: s.owns(chat), now: now)
        {
            leaseAcks += 1
            if let other = openings[chat]?.first(where: { $0.server != me && $0.at >= lane.since && $0.at <= now }) {
                violations.append(
                    "chat \(chat): \(s.id)#\(s.incarnation) acknowledged under its lease at \(now) (stamp since \(lane.since)) after another server opened it at \(other.at) [opener \(other.note)] [acker \(describe(s, now))]"
                )
            }
            return
        }
        fences += 1
        let stamp = s.lease.stamp(viewVersion: s.viewVersion, owns: s.owns(chat), now: now)
        if openings[chat]?.contains(where: { $0.server != me && $0.at >= lane.openedAt }) == true {
            s.lanes[chat] = nil  // the fence saw a newer epoch: forget the chat
        } else {
            s.lanes[chat] = (lane.openedAt, stamp, now)
        }
    }

    /// Openings whose header write has completed: `ChatSequencer.open` goes on (end read,
    /// tombstone) only if `mayContinueOpening` still holds; an opening that stops places nothing.
    mutating func finishOpenings(_ s: Server, _ now: Int64) {
        let me = ObjectIdentifier(s)
        for (chat, o) in s.opening where o.completes <= now {
            s.opening[chat] = nil
            guard s.lease.mayContinueOpening(o.stamp, viewVersion: s.viewVersion, owns: s.owns(chat), now: now)
            else { continue }
            if let other = completedOpenings[chat]?.first(where: { $0.server != me && $0.end >= o.start }) {
                violations.append(
                    "chat \(chat): \(s.id)#\(s.incarnation) opened it from \(o.start) to \(now) while another server's opening ran from \(other.start) to \(other.end) [other \(other.note)] [this \(describe(s, now))]"
                )
            }
            completedOpenings[chat, default: []].append((o.start, now, me, describe(s, now)))
            s.lanes[chat] = (now, o.stamp, now)
            openings[chat, default: []].append((now, me, describe(s, now)))
            opens += 1
        }
    }

    func describe(_ s: Server, _ now: Int64) -> String {
        let l = s.lease
        return
            "\(s.id)#\(s.incarnation) view \(s.hashing.servers.keys.sorted()) v\(s.viewVersion) period \(l.period) start \(l.periodStart) beat \(l.lastBeatStart ?? -1) refresh \(l.lastRefreshStart ?? -1) alone \(l.alone) rows \(rows.keys.sorted())"
    }

    /// Something happens to one server: a pause, a crash (and maybe a restart), a graceful stop.
    mutating func disturb(_ now: Int64) {
        nextEventAt = now + between(2_000_000_000, 7_000_000_000)
        let running = servers.filter(\.running)
        guard !running.isEmpty else { return }
        let s = running[Int(rng.next() % UInt64(running.count))]
        switch rng.next() % 4 {
        case 0, 1:
            s.pausedUntil = now + between(100_000_000, 3 * timings.silenceNanos)
            if var op = s.op {
                op.completes = max(op.completes, s.pausedUntil)
                s.op = op
            }
        case 2:
            s.running = false
            if chance(0.7) { restartLater(s.id, now) }
        default:
            s.lease.revoke()
            travelling.append((between(now, now + 50_000_000), s.id, nil))
            s.running = false
            restartLater(s.id, now + 100_000_000)
        }
    }

    mutating func restartLater(_ id: String, _ now: Int64) {
        let at = now + between(100_000_000, 4 * timings.silenceNanos)
        pendingStarts.append((at, id))
    }

    var pendingStarts: [(Int64, String)] = []
}
