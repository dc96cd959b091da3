import ConfabEngine

@testable import ConfabRing

/// Joins and leaves under load, run by the node's own state machines, `Bootstrap` and
/// `Decommission` (ConfabRing/Movement): the simulation only carries out their actions on its
/// network — gossip the status, ask members for confirmation (`moveConfirmRequest`), stream
/// (`streamRequest` to sources, `streamPush` to targets) — and feeds them answers and ticks, as
/// `ClusterService+Bootstrap.swift` and `+Decommission.swift` do. Every coordinator that learns a
/// move adds the pending replicas `PendingRanges` computes. The stream reads the in-memory store
/// by token range (the role `RangeStreamer` plays over the engine) and keeps every timestamp and
/// tombstone.
extension RingSimulation {
    static let ringDelay: Int64 = 5_000_000_000
    static let streamTimeout: Int64 = 10_000_000_000

    var joinTokens: [Token] { Self.rings[params.nodes + 1]!.tokens(of: Self.nodeID(params.nodes)) }

    /// The join or leave the seed asked for has finished (or was never asked for).
    func topologySettled() -> Bool { (!params.join || joinDone) && (!params.leave || leaveDone) }

    // MARK: Join

    mutating func startJoin(_ i: Int) {
        guard !nodes[i].member else { return }
        nodes[i].member = true
        nodes[i].up = true
        nodes[i].epoch += 1
        nodes[i].gossiper = Self.gossiper(i, generation: nodes[i].generation, tokens: nil)
        nodes[i].viewCache = nil
        nodes[i].move = .joinDiscover
        queue.push(now + Int64.random(in: 0..<1_000_000_000, using: &rng), .gossipTick(i, epoch: nodes[i].epoch))
        queue.push(now + 100_000_000, .tick(i, epoch: nodes[i].epoch))
        scheduleStep(i, after: 3_000_000_000)
    }

    /// The join's timing in the simulation (the node's defaults are longer).
    static let bootstrapTiming = Bootstrap.Timing(
        ringDelay: .nanoseconds(ringDelay), confirmInterval: .nanoseconds(confirmRetry),
        confirmTimeout: .nanoseconds(confirmTimeout), settle: .nanoseconds(settleDelay),
        streamTimeout: .nanoseconds(streamTimeout))

    /// Join messages carry the machine's round above this, so they never match a leave's session.
    static let joinSessionBase: UInt64 = 1 << 40

    /// Discovery (the node's `advanceJoin`): once a peer answered, the node bootstraps with the
    /// node's own state machine, `Bootstrap`.
    mutating func joinStep(_ i: Int) {
        guard case .joinDiscover = nodes[i].move else { return }
        guard !nodes[i].gossiper.liveMembers.isEmpty else { return scheduleStep(i, after: 1_000_000_000) }
        var machine = Bootstrap(tokens: joinTokens, replicationFactors: [Self.rf], timing: Self.bootstrapTiming)
        let actions = machine.start(now: instant)
        nodes[i].move = .joining(machine)
        carryOut(actions, at: i)
    }

    /// What the moving node `i` knows, as the machine sees it.
    func moveView(at i: Int) -> MoveView {
        let g = nodes[i].gossiper
        return MoveView(local: g.local, states: Array(g.states.values), isAlive: { g.isAlive($0) }, ring: g.tokenRing())
    }

    /// One step of node `i`'s bootstrap (an answer or the clock), then its actions.
    mutating func bootstrapStep(_ i: Int, _ step: (inout Bootstrap, RingInstant, MoveView) -> [Bootstrap.Action]) {
        guard case .joining(var machine) = nodes[i].move else { return }
        let actions = step(&machine, instant, moveView(at: i))
        nodes[i].move = .joining(machine)
        carryOut(actions, at: i)
    }

    mutating func carryOut(_ actions: [Bootstrap.Action], at i: Int) {
        for action in actions {
            switch action {
            case .announceJoining(let tokens):
                nodes[i].gossiper.setStatus(.joining, tokens: tokens)
                nodes[i].viewCache = nil
            case .confirm(let round, let members):
                for m in members {
                    send(.moveConfirmRequest(Self.joinSessionBase + round, .joining), from: i, to: index(of: m))
                }
            case .stream(let round, let jobs):
                for job in jobs {
                    send(.streamRequest(Self.joinSessionBase + round, job.ranges), from: i, to: index(of: job.source))
                }
            case .complete:
                finishJoin(i)
            case .note:
                break
            }
        }
    }

    mutating func streamDataArrived(session: UInt64, from: Int, at i: Int) {
        guard session > Self.joinSessionBase, session < Self.leaveSessionBase else { return }
        stats.streamed += 1
        let source = nodes[from].id
        bootstrapStep(i) { machine, now, view in
            machine.onStreamDone(round: session - Self.joinSessionBase, source: source, now: now, view: view)
        }
    }

    mutating func finishJoin(_ i: Int) {
        nodes[i].savedTokens = joinTokens
        nodes[i].gossiper.setStatus(.normal, tokens: joinTokens)
        nodes[i].viewCache = nil
        nodes[i].move = .none
        joinDone = true
    }

    mutating func scheduleStep(_ i: Int, after: Int64) {
        nodes[i].step += 1
        queue.push(now + after, .joinStep(i, step: nodes[i].step))
    }

    // MARK: Confirmation

    /// How long a moving node waits for the members' confirmations before asking again.
    static let confirmTimeout: Int64 = 2_000_000_000
    static let confirmRetry: Int64 = 1_000_000_000
    /// After every member confirmed, writes coordinated from an older view have finished or
    /// failed once the write timeout (2 s, `WriteCoordinator`) passed; then streaming starts.
    static let settleDelay: Int64 = 2_500_000_000

    /// A member's answer to node `i`'s confirmation round, for its join or its leave.
    mutating func moveConfirmArrived(session: UInt64, knows: Bool, generation: Int64, from: Int, at i: Int) {
        let member = nodes[from].id
        if session > Self.leaveSessionBase {
            let refusal = MoveRefusal("\(member) does not see this node as leaving yet")
            leaveStep(i) { machine, now, view in
                machine.onConfirm(
                    round: session - Self.leaveSessionBase, member: member,
                    knows ? .success(generation) : .failure(refusal), now: now, view: view)
            }
        } else if session > Self.joinSessionBase {
            let refusal = MoveRefusal("\(member) does not see this node as joining yet")
            bootstrapStep(i) { machine, now, view in
                machine.onConfirm(
                    round: session - Self.joinSessionBase, member: member,
                    knows ? .success(generation) : .failure(refusal), now: now, view: view)
            }
        }
    }

    // MARK: Leave

    /// The leave's timing in the simulation; members may take as long as they need to confirm.
    static let decommissionTiming = Decommission.Timing(
        ringDelay: .nanoseconds(ringDelay), confirmInterval: .nanoseconds(confirmRetry),
        confirmTimeout: .nanoseconds(confirmTimeout), confirmPatience: .seconds(3600),
        settle: .nanoseconds(settleDelay), streamTimeout: .nanoseconds(streamTimeout), leftWait: .nanoseconds(ringDelay)
    )

    /// Leave messages carry the machine's round above this.
    static let leaveSessionBase: UInt64 = 1 << 41

    /// The operator runs decommission (again, every few seconds, until it can start): the node's
    /// `Decommission` machine decides whether it may and how it goes.
    mutating func startLeave(_ i: Int) {
        guard nodes[i].member, !nodes[i].left else { return }
        let retry = { (s: inout RingSimulation) in s.queue.push(s.now + 3_000_000_000, .leave(i)) }
        guard nodes[i].up, case .none = nodes[i].move, let tokens = nodes[i].savedTokens, !tokens.isEmpty else {
            return retry(&self)
        }
        let view = moveView(at: i)
        // The scenario's choice: the ring keeps RF nodes.
        guard
            Decommission.refusal(
                view: view, isNormal: nodes[i].gossiper.localState.status == .normal, replicationFactors: [Self.rf])
                == nil,
            trueRing().nodeCount > Self.rf
        else { return retry(&self) }
        var machine = Decommission(replicationFactors: [Self.rf], timing: Self.decommissionTiming)
        let actions = machine.start(now: instant)
        nodes[i].move = .leaving(machine)
        carryOut(actions, at: i)
    }

    /// One step of node `i`'s decommission (an answer or the clock), then its actions.
    mutating func leaveStep(_ i: Int, _ step: (inout Decommission, RingInstant, MoveView) -> [Decommission.Action]) {
        guard case .leaving(var machine) = nodes[i].move else { return }
        let actions = step(&machine, instant, moveView(at: i))
        nodes[i].move = .leaving(machine)
        carryOut(actions, at: i)
    }

    mutating func carryOut(_ actions: [Decommission.Action], at i: Int) {
        for action in actions {
            switch action {
            case .announceLeaving:
                nodes[i].gossiper.setStatus(.leaving)
                nodes[i].viewCache = nil
            case .confirm(let round, let members):
                for m in members {
                    send(.moveConfirmRequest(Self.leaveSessionBase + round, .leaving), from: i, to: index(of: m))
                }
            case .stream(let round, let handoffs):
                for h in handoffs {
                    send(
                        .streamPush(Self.leaveSessionBase + round, rangeData(h.ranges, at: i)), from: i,
                        to: index(of: h.target))
                }
            case .announceLeft:
                nodes[i].gossiper.setStatus(.left)
                nodes[i].viewCache = nil
            case .shutDown:
                // The news had the ring delay to spread: the node shuts down for good, taking the
                // hints it still holds with it (as the node does; the log counts them).
                nodes[i].up = false
                nodes[i].left = true
                nodes[i].epoch += 1
                nodes[i].writes = [:]
                nodes[i].reads = [:]
                nodes[i].wire = SimWire(time: time)
                leaveDone = true
            case .revert:
                // NORMAL again with its data; the operator runs decommission again.
                nodes[i].gossiper.setStatus(.normal, tokens: nodes[i].savedTokens)
                nodes[i].viewCache = nil
                nodes[i].move = .none
                queue.push(now + 5_000_000_000, .leave(i))
            case .note:
                break
            }
        }
    }

    mutating func streamAckArrived(session: UInt64, from: Int, at i: Int) {
        guard session > Self.leaveSessionBase else { return }
        stats.streamed += 1
        let target = nodes[from].id
        leaveStep(i) { machine, now, view in
            machine.onStreamDone(round: session - Self.leaveSessionBase, target: target, now: now, view: view)
        }
    }

    // MARK: Streaming

    /// Node `i`'s data in `ranges`, one mutation per partition with its header, rows, timestamps
    /// and tombstones.
    func rangeData(_ ranges: [TokenRange], at i: Int) -> [Mutation] {
        nodes[i].store.keys.sorted { compareBytes($0, $1) < 0 }.compactMap { key in
            let token = Token(partitionKey: key)
            guard ranges.contains(where: { $0.contains(token) }), let r = nodes[i].store[key] else { return nil }
            return Mutation(table: TestMessages.table, partitionKey: key, header: r.header, rows: r.rows)
        }
    }
}
