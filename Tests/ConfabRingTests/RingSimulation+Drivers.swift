import ConfabEngine

@testable import ConfabRing

/// The simulation's side of the request drivers (`WriteDriver`, `ReadDriver`): the node's real
/// drivers run over `SimTransport` and `SimClock`, which only record what the drivers ask for in
/// the node's `SimWire`. The simulation then carries that out (`drain`) on its seeded network and
/// event queue, and feeds the answers back through the recorded completions — so a driver's
/// logic (answer gating on start hints, deadlines, unreachable replicas) is what the seeds test.
///
/// The simulation is single-threaded; the drivers' locks are never contended here.
final class SimWire: @unchecked Sendable {
    enum Request {
        case write(Mutation, to: NodeID, op: Int, repair: Bool, done: @Sendable (ReplicaOutcome<Void>) -> Void)
        case read(
            SliceQuery, digestOnly: Bool, from: NodeID, done: @Sendable (ReplicaOutcome<ReplicaReadAnswer>) -> Void)
        case storeHint(Mutation, for: NodeID, op: Int, done: @Sendable () -> Void)
        case timer(id: UInt64, at: RingInstant)
        case writeAnswered(op: Int, WriteDriver<SimTransport, SimClock>.Answer)
        case readAnswered(op: Int, ReadDriver<SimTransport, SimClock>.Answer)
    }

    /// What the drivers asked for since the simulation last drained, in order.
    var requests: [Request] = []
    /// Replies still expected, by the request id that travels in the message.
    var writeReplies: [UInt64: @Sendable (ReplicaOutcome<Void>) -> Void] = [:]
    var readReplies: [UInt64: @Sendable (ReplicaOutcome<ReplicaReadAnswer>) -> Void] = [:]
    /// Hint stores waiting for their persist, by hint id.
    var hintsDurable: [UInt64: @Sendable () -> Void] = [:]
    var timers: [UInt64: @Sendable () -> Void] = [:]
    let time: SimTime

    init(time: SimTime) { self.time = time }
}

/// The simulation's clock and id source, shared by every node's wire (a box, so the drivers'
/// clocks read the time the event loop has reached).
final class SimTime: @unchecked Sendable {
    var now: Int64 = 0
    /// Ids unique across the run, so a reply meant for a crashed node's old request never
    /// matches a new one after its restart.
    private var lastId: UInt64 = 0

    func nextId() -> UInt64 {
        lastId += 1
        return lastId
    }
}

struct SimTransport: ReplicaTransport {
    let wire: SimWire
    let op: Int
    /// The read path's transport: its writes are read repairs.
    var repairs = false

    func write(_ mutation: Mutation, to replica: NodeID, _ done: @escaping @Sendable (ReplicaOutcome<Void>) -> Void) {
        wire.requests.append(.write(mutation, to: replica, op: op, repair: repairs, done: done))
    }

    func read(
        _ query: SliceQuery, digestOnly: Bool, from replica: NodeID,
        _ done: @escaping @Sendable (ReplicaOutcome<ReplicaReadAnswer>) -> Void
    ) {
        wire.requests.append(.read(query, digestOnly: digestOnly, from: replica, done: done))
    }

    func storeHint(_ mutation: Mutation, for replica: NodeID, _ done: @escaping @Sendable () -> Void) {
        wire.requests.append(.storeHint(mutation, for: replica, op: op, done: done))
    }
}

struct SimClock: DriverClock {
    let wire: SimWire

    func now() -> RingInstant { RingInstant(nanoseconds: wire.time.now) }

    func schedule(at deadline: RingInstant, _ body: @escaping @Sendable () -> Void) -> DriverTimer {
        let id = wire.time.nextId()
        wire.timers[id] = body
        wire.requests.append(.timer(id: id, at: deadline))
        let wire = self.wire
        return DriverTimer { wire.timers[id] = nil }
    }
}

extension RingSimulation {
    /// Carries out what node `i`'s drivers asked for, until they ask for nothing more, then
    /// forgets the drivers that finished.
    mutating func drain(_ i: Int) {
        let wire = nodes[i].wire
        while !wire.requests.isEmpty {
            let batch = wire.requests
            wire.requests = []
            for request in batch { carryOut(request, wire: wire, at: i) }
        }
        for req in nodes[i].writes.keys.sorted() where nodes[i].writes[req]!.driver.isFinished {
            let op = nodes[i].writes.removeValue(forKey: req)!.op
            mutationOps[op]!.finished = true
        }
        for req in nodes[i].reads.keys.sorted() where nodes[i].reads[req]!.driver.isFinished {
            nodes[i].reads[req] = nil
        }
    }

    private mutating func carryOut(_ request: SimWire.Request, wire: SimWire, at i: Int) {
        switch request {
        case .write(let m, let to, _, let repair, let done):
            if repair { stats.repairs += 1 }
            let id = wire.time.nextId()
            wire.writeReplies[id] = done
            send(.mutate(id, m), from: i, to: index(of: to))
        case .read(let q, let digestOnly, let from, let done):
            let id = wire.time.nextId()
            wire.readReplies[id] = done
            send(digestOnly ? .readDigest(id, q) : .readData(id, q), from: i, to: index(of: from))
        case .storeHint(let m, let target, let op, let done):
            let stored = nodes[i].hints.store(
                m, for: target, targetDownSince: nodes[i].gossiper.downSince(target), now: instant)
            var persisting = false
            for case .persist(let h) in stored {
                persisting = true
                // A hint stored before the write was answered is a start hint: the answer waits for it.
                if !mutationOps[op]!.answered { mutationOps[op]!.hintedAtStart = true }
                mutationOps[op]!.hintPersistsPending += 1
                wire.hintsDurable[h.id] = done  // one persist per store: the queue keeps one hint per write and target
                queue.push(
                    now + Int64.random(in: 1_000_000...20_000_000, using: &rng),
                    .hintDurable(i, epoch: nodes[i].epoch, h, op: op))
            }
            if !persisting { done() }
        case .timer(let id, let at):
            queue.push(max(now, at.nanoseconds), .driverTimer(i, epoch: nodes[i].epoch, id: id))
        case .writeAnswered(let op, let answer):
            writeAnswered(answer, op: op, at: i)
        case .readAnswered(let op, let answer):
            switch answer.result {
            case .success(let result): readSucceeded(result, op: op, at: i)
            case .failure(let e):
                if e.code == .unavailable { stats.unavailable += 1 } else { stats.timeouts += 1 }
            }
        }
    }

    /// The client's answer to a write: counts it, checks the copies behind an acknowledgement,
    /// and (by the seed) crashes the coordinator right after it acknowledged a hinted write.
    mutating func writeAnswered(_ answer: Result<Void, RingError>, op: Int, at i: Int) {
        mutationOps[op]!.answered = true
        switch answer {
        case .success:
            stats.acked += 1
            mutationOps[op]!.acked = true
            checkCopiesAtAck(op: op, at: i)
            // Acknowledged means every hint stored for it so far is on disk: a crash right after
            // the answer must not take a replica's only way to the write with it.
            if mutationOps[op]!.hintPersistsPending > 0 {
                failures.append(
                    "QUORUM write \(ops[op]) acknowledged by \(nodes[i].id.id) at \(now) ns before its hints were durable"
                )
            }
            switch ops[op] {
            case .write(let k):
                writes[k].acked = true
                writes[k].ackedAt = now
            case .delete(let k): deletes[k]!.acked = true
            default: break
            }
            if params.hintCrash, mutationOps[op]!.hintedAtStart, hintCrashes < 3,
                Int.random(in: 0..<3, using: &rng) == 0
            {
                // The coordinator dies right after answering: only the hints on disk survive.
                hintCrashes += 1
                queue.push(now + Int64.random(in: 0...5_000_000, using: &rng), .crash(i))
            }
        case .failure(let e):
            if e.code == .unavailable { stats.unavailable += 1 } else { stats.timeouts += 1 }
        }
    }
}
