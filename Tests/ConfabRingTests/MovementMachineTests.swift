import ConfabEngine
import Testing

@testable import ConfabRing

/// The join and leave state machines on their own (the ring simulation runs them under faults;
/// here each rule is pinned down once).
@Suite struct MovementMachineTests {
    static let owners = (0..<3).map(Fixtures.node)
    static let joiner = Fixtures.node(3)
    static let ring: TokenRing = {
        var rng = SplitMix64(seed: 7)
        let allocator = TokenAllocator(tokensPerNode: 8, replicationFactor: 3)
        var ring = TokenRing()
        for node in owners { try! ring.add(node, tokens: allocator.allocate(for: node, in: ring, using: &rng)) }
        return ring
    }()
    static let joinTokens: [Token] = {
        var rng = SplitMix64(seed: 8)
        return TokenAllocator(tokensPerNode: 8, replicationFactor: 3).allocate(for: joiner, in: ring, using: &rng)
    }()

    static func state(_ node: NodeID, _ status: NodeStatus, tokens: [Token]) -> EndpointState {
        EndpointState(
            node: node, heartbeat: HeartbeatState(generation: 1, version: 5),
            applicationStates: [
                .status: VersionedValue(status.rawValue, version: 2),
                .tokens: VersionedValue(tokens.map { String($0.value) }.joined(separator: ","), version: 2),
            ])
    }

    func view(local: NodeID, extra: [EndpointState] = [], down: Set<NodeID> = [], ring: TokenRing = Self.ring)
        -> MoveView
    {
        let states = Self.owners.map { Self.state($0, .normal, tokens: Self.ring.tokens(of: $0)) } + extra
        return MoveView(local: local, states: states, isAlive: { !down.contains($0) }, ring: ring)
    }

    static let timing = Bootstrap.Timing(
        ringDelay: .seconds(5), confirmInterval: .seconds(1), confirmTimeout: .seconds(2), settle: .seconds(2),
        streamTimeout: .seconds(10))

    func at(_ s: Double) -> RingInstant { Fixtures.seconds(s) }

    @Test func aJoinConfirmsSettlesStreamsVerifiesAndCompletes() throws {
        var b = Bootstrap(tokens: Self.joinTokens, replicationFactors: [3], timing: Self.timing)
        let me = view(local: Self.joiner, extra: [Self.state(Self.joiner, .joining, tokens: Self.joinTokens)])
        guard case .announceJoining = b.start(now: at(0)).first else { throw Failure("no announcement") }
        #expect(b.onTick(now: at(4.9), view: me).isEmpty, "nothing before the ring delay")
        guard case .confirm(let round, let members)? = b.onTick(now: at(5), view: me).first else {
            throw Failure("no confirmation round")
        }
        #expect(members == Self.owners)
        // One member does not see the join yet: ask again after the confirm interval.
        guard
            case .note? = b.onConfirm(
                round: round, member: Self.owners[0], .failure(MoveRefusal("no")), now: at(5.1), view: me
            ).first
        else { throw Failure("a refusal must start over") }
        #expect(b.onTick(now: at(6.0), view: me).isEmpty)
        guard case .confirm(let round2, _)? = b.onTick(now: at(6.1), view: me).first else { throw Failure("no retry") }
        for (i, m) in Self.owners.enumerated() {
            #expect(b.onConfirm(round: round2, member: m, .success(Int64(10 + i)), now: at(6.2), view: me).isEmpty)
        }
        #expect(b.onTick(now: at(8.1), view: me).isEmpty, "settling for the write timeout")
        guard case .stream(let streamRound, let jobs)? = b.onTick(now: at(8.25), view: me).first else {
            throw Failure("no stream")
        }
        let sources = Set(jobs.map(\.source))
        #expect(!sources.isEmpty && sources.isSubset(of: Set(Self.owners)))
        // A failed source is avoided next time; the join starts over after the ring delay.
        let failed = jobs[0].source
        _ = b.onStreamFailed(round: streamRound, source: failed, reason: "connection reset", now: at(9))
        #expect(b.avoid == [failed])
        guard case .confirm(let round3, _)? = b.onTick(now: at(14), view: me).first else { throw Failure("no retry") }
        for (i, m) in Self.owners.enumerated() {
            _ = b.onConfirm(round: round3, member: m, .success(Int64(10 + i)), now: at(14), view: me)
        }
        guard case .stream(let round4, let jobs2)? = b.onTick(now: at(16), view: me).first else {
            throw Failure("no second stream")
        }
        var verify: [Bootstrap.Action] = []
        for source in Set(jobs2.map(\.source)).sorted() {
            verify = b.onStreamDone(round: round4, source: source, now: at(17), view: me)
        }
        guard case .confirm(let round5, _)? = verify.first else { throw Failure("no verification") }
        // A member restarted while streaming: stream again.
        guard
            case .note? = b.onConfirm(round: round5, member: Self.owners[1], .success(99), now: at(17.1), view: me)
                .first
        else { throw Failure("a new generation must start over") }
        #expect(b.attempts == 2)
        #expect(!b.isDone)
    }

    @Test func aJoinerWaitsForALiveSmallerJoiner() throws {
        var b = Bootstrap(tokens: Self.joinTokens, replicationFactors: [3], timing: Self.timing)
        let other =
            Fixtures.node(0).id < Self.joiner.id ? NodeID(id: "a-joiner", host: "127.0.0.1", port: 1) : Self.joiner
        let blocked = view(local: Self.joiner, extra: [Self.state(other, .joining, tokens: [Token(1)])])
        _ = b.start(now: at(0))
        guard case .note(let why)? = b.onTick(now: at(5), view: blocked).first else { throw Failure("not blocked") }
        #expect(why.contains("one node joins or leaves at a time"))
    }

    static let leaveTiming = Decommission.Timing(
        ringDelay: .seconds(5), confirmInterval: .seconds(1), confirmTimeout: .seconds(2),
        confirmPatience: .seconds(3), settle: .seconds(2), streamTimeout: .seconds(10), leftWait: .seconds(5))

    @Test func aLeaveIsRefusedWhenAGainingNodeIsDownOrTheNodeIsAlone() {
        let leaver = Self.owners[0]
        #expect(
            Decommission.refusal(view: view(local: leaver), isNormal: true, replicationFactors: [3]) == nil)
        guard
            case .unavailable(let why)? = Decommission.refusal(
                view: view(local: leaver, down: [Self.owners[1]]), isNormal: true, replicationFactors: [2])
        else {
            Issue.record("a down target must refuse")
            return
        }
        #expect(why.contains("down"))
        var alone = TokenRing()
        try! alone.add(leaver, tokens: Self.ring.tokens(of: leaver))
        guard
            case .invalid? = Decommission.refusal(
                view: view(local: leaver, ring: alone), isNormal: true, replicationFactors: [3])
        else {
            Issue.record("a lone node must refuse")
            return
        }
    }

    @Test func aLeaveStreamsVerifiesAnnouncesLeftAndShutsDownOrRevertsWhenMembersNeverConfirm() throws {
        let leaver = Self.owners[0]
        let me = view(local: leaver)
        // RF 2 over three nodes: the leaver's ranges move (at RF 3 the other two hold everything).
        var d = Decommission(replicationFactors: [2], timing: Self.leaveTiming)
        guard case .announceLeaving? = d.start(now: at(0)).first else { throw Failure("no LEAVING") }
        guard case .confirm(let r1, let members)? = d.onTick(now: at(5), view: me).first else {
            throw Failure("no confirmation")
        }
        #expect(members == Array(Self.owners.dropFirst()))
        for m in members { _ = d.onConfirm(round: r1, member: m, .success(1), now: at(5.1), view: me) }
        guard case .stream(let r2, let handoffs)? = d.onTick(now: at(7.25), view: me).first else {
            throw Failure("no stream")
        }
        var next: [Decommission.Action] = []
        for t in Set(handoffs.map(\.target)).sorted() {
            next = d.onStreamDone(round: r2, target: t, now: at(8), view: me)
        }
        guard case .confirm(let r3, _)? = next.first else { throw Failure("no verification") }
        for m in members { next = d.onConfirm(round: r3, member: m, .success(1), now: at(8.1), view: me) }
        guard case .announceLeft? = next.first else { throw Failure("no LEFT") }
        #expect(d.hasLeft)
        #expect(d.onTick(now: at(13), view: me).isEmpty)
        guard case .shutDown? = d.onTick(now: at(13.1), view: me).first else { throw Failure("no shutdown") }

        // Members that never see the move: NORMAL again once the patience ran out.
        var stuck = Decommission(replicationFactors: [3], timing: Self.leaveTiming)
        _ = stuck.start(now: at(0))
        var reverted = false
        var t = 5.0
        while t < 20, !reverted {
            for action in stuck.onTick(now: at(t), view: me) {
                if case .revert(let reason) = action {
                    reverted = true
                    #expect(reason.contains("confirmed"))
                }
            }
            t += 0.2
        }
        #expect(reverted && !stuck.hasLeft && t < 9.5, "reverted at \(t) s")
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
