import ConfabEngine
@testable import ConfabRing

/// A deterministic, single-threaded simulation of a Confab ring: 3–5 nodes running the real
/// `Gossiper`, `WriteCoordinator`, `ReadCoordinator` and `HintQueue` state machines over an
/// in-memory network with loss, delay, reordering, partitions, crashes/restarts and clock skew.
/// Each node's engine is a tiny in-memory store merging mutations by timestamp (durable: it
/// survives a crash, like an engine that acknowledges only after its WAL sync).
///
/// Everything random comes from one `SplitMix64(seed:)`, and nothing iterates a dictionary in an
/// order that matters, so a seed replays exactly.
struct RingSimulation {
    struct Parameters: CustomStringConvertible {
        var nodes = 3
        var lossRate = 0.0
        var crashes = 0
        var partitions = 0
        var maxSkewMicros: Int64 = 50_000
        var chaosEnd: Int64 = 20_000_000_000       // ns: faults and client load stop here
        var convergenceBound: Int64 = 30_000_000_000  // ns after healing
        var description: String {
            "nodes \(nodes) loss \(lossRate) crashes \(crashes) partitions \(partitions)"
        }
    }

    enum Message {
        case gossip(GossipMessage)
        case mutate(UInt64, Mutation), writeAck(UInt64)
        case readData(UInt64, SliceQuery), readDigest(UInt64, SliceQuery)
        case data(UInt64, ReplicaReadResult), digest(UInt64, ReadDigest)
        case repair(UInt64, Mutation), repairAck(UInt64)
        case hint(UInt64, Mutation), hintAck(UInt64)
    }

    enum Event {
        case deliver(from: Int, to: Int, Message)
        case gossipTick(Int, epoch: Int)
        case tick(Int, epoch: Int)
        case client
        case crash(Int), restart(Int)
        case partition, heal
    }

    enum Op { case write(Int), delete(Int), read(chat: Int64, expected: [Int]), check(chat: Int64) }

    struct Node {
        var id: NodeID
        var up = true
        var epoch = 0
        var generation: Int64 = 1
        var skewMicros: Int64
        var store: [[UInt8]: ReplicaReadResult] = [:]
        var gossiper: Gossiper
        var writes: [UInt64: (WriteCoordinator, op: Int)] = [:]
        var reads: [UInt64: (ReadCoordinator, op: Int)] = [:]
        var hints = HintQueue()
        var nextRequest: UInt64 = 0
    }

    struct WriteRecord {
        var chat: Int64
        var clustering: [UInt8]
        var timestamp: Int64
        var acked = false
        var ackedAt: Int64 = .max
    }

    struct DeleteRecord {
        var timestamp: Int64
        var acked = false
    }

    static let rf = 3
    static let chats: [Int64] = [1, 2, 3]
    /// Token layouts per node count, allocated once (the allocator is the same for every seed).
    static let rings: [Int: TokenRing] = {
        var out: [Int: TokenRing] = [:]
        for n in 3...5 {
            var rng = SplitMix64(seed: 1)
            let allocator = TokenAllocator(tokensPerNode: 16, replicationFactor: rf)
            var ring = TokenRing()
            for i in 0..<n {
                let node = RingSimulation.nodeID(i)
                try! ring.add(node, tokens: allocator.allocate(for: node, in: ring, using: &rng))
            }
            out[n] = ring
        }
        return out
    }()

    static func nodeID(_ i: Int) -> NodeID { NodeID(id: "sim-\(i)", host: "10.0.0.\(i + 1)", port: 7000) }

    let seed: UInt64
    let params: Parameters
    var rng: SplitMix64
    var now: Int64 = 0
    var queue = EventQueue()
    var nodes: [Node] = []
    let ring: TokenRing
    var side: [Int]
    var lossRate: Double
    var healed = false
    var healedAt: Int64 = .max
    var convergedAt: Int64?
    var ops: [Op] = []
    var writes: [WriteRecord] = []
    var deletes: [Int: DeleteRecord] = [:]
    var failures: [String] = []
    var finalResults: [Int64: ReadResult] = [:]
    /// A client read paging through a partition with a small limit.
    struct Paging {
        var limit: Int
        var rows: [[UInt8]] = []
        var pages = 0
    }
    var paging: [Int: Paging] = [:]
    var stats = (acked: 0, unavailable: 0, timeouts: 0, reads: 0, repairs: 0, hintsReplayed: 0)

    init(seed: UInt64) {
        self.seed = seed
        var rng = SplitMix64(seed: seed)
        var p = Parameters()
        p.nodes = Int.random(in: 3...5, using: &rng)
        p.lossRate = [0, 0.01, 0.05, 0.1].randomElement(using: &rng)!
        p.crashes = Int.random(in: 0...3, using: &rng)
        p.partitions = Int.random(in: 0...2, using: &rng)
        params = p
        ring = Self.rings[p.nodes]!
        side = Array(repeating: 0, count: p.nodes)
        lossRate = p.lossRate
        for i in 0..<p.nodes {
            let skew = Int64.random(in: -p.maxSkewMicros...p.maxSkewMicros, using: &rng)
            nodes.append(Node(id: Self.nodeID(i), skewMicros: skew, gossiper: Self.gossiper(i, generation: 1, ring: ring)))
        }
        self.rng = rng
        for i in 0..<p.nodes {
            queue.push(Int64.random(in: 0..<1_000_000_000, using: &self.rng), .gossipTick(i, epoch: 0))
            queue.push(Int64(i) * 10_000_000, .tick(i, epoch: 0))
        }
        var t: Int64 = 3_000_000_000
        while t < p.chaosEnd {
            queue.push(t, .client)
            t += Int64.random(in: 20_000_000...120_000_000, using: &self.rng)
        }
        for _ in 0..<p.crashes {
            queue.push(Int64.random(in: 2_000_000_000..<(p.chaosEnd - 3_000_000_000), using: &self.rng),
                       .crash(Int.random(in: 0..<p.nodes, using: &self.rng)))
        }
        for _ in 0..<p.partitions {
            queue.push(Int64.random(in: 2_000_000_000..<(p.chaosEnd - 3_000_000_000), using: &self.rng), .partition)
        }
        queue.push(p.chaosEnd, .heal)
    }

    static func gossiper(_ i: Int, generation: Int64, ring: TokenRing) -> Gossiper {
        let id = nodeID(i)
        return Gossiper(local: id, generation: generation, seeds: [nodeID(0).address, nodeID(1).address],
                        applicationStates: [.status: NodeStatus.normal.rawValue,
                                            .tokens: EndpointState.encodeTokens(ring.tokens(of: id))])
    }

    var instant: RingInstant { RingInstant(nanoseconds: now) }
    func wallMicros(_ i: Int) -> Int64 { 1_700_000_000_000_000 + now / 1000 + nodes[i].skewMicros }

    // MARK: Running

    /// Runs the scenario: chaos, healing, convergence, then final QUORUM reads of every chat.
    mutating func run() {
        let end = params.chaosEnd + params.convergenceBound
        while let (t, event) = queue.pop(), t <= end {
            now = t
            handle(event)
            if healed, convergedAt == nil, gossipConverged() { convergedAt = now }
            if convergedAt != nil && allOpsSettled() { break }
        }
        if convergedAt == nil {
            failures.append("gossip did not converge within \(params.convergenceBound / 1_000_000_000) s after healing")
        }
        finalReads()
    }

    func allOpsSettled() -> Bool { nodes.allSatisfy { $0.writes.isEmpty && $0.reads.isEmpty } }

    mutating func handle(_ event: Event) {
        switch event {
        case .deliver(let from, let to, let message):
            guard nodes[to].up else { return }
            receive(message, from: from, at: to)
        case .gossipTick(let i, let epoch):
            guard nodes[i].up, nodes[i].epoch == epoch else { return }
            let actions = nodes[i].gossiper.onGossipTick(now: instant, using: &rng)
            perform(actions, at: i)
            queue.push(now + 1_000_000_000, .gossipTick(i, epoch: epoch))
        case .tick(let i, let epoch):
            guard nodes[i].up, nodes[i].epoch == epoch else { return }
            tick(i)
            queue.push(now + 200_000_000, .tick(i, epoch: epoch))
        case .client:
            clientOp()
        case .crash(let i):
            guard nodes[i].up else { return }
            nodes[i].up = false
            nodes[i].epoch += 1
            nodes[i].writes = [:]  // clients of in-flight requests never get an answer
            nodes[i].reads = [:]
            queue.push(now + Int64.random(in: 1_000_000_000...8_000_000_000, using: &rng), .restart(i))
        case .restart(let i):
            guard !nodes[i].up else { return }
            restart(i)
        case .partition:
            guard !healed else { return }
            side = (0..<nodes.count).map { _ in Int.random(in: 0...1, using: &rng) }
            queue.push(now + Int64.random(in: 2_000_000_000...8_000_000_000, using: &rng), .heal)
        case .heal:
            side = Array(repeating: 0, count: nodes.count)
            if now >= params.chaosEnd, !healed {
                healed = true
                healedAt = now
                lossRate = 0
                for i in nodes.indices where !nodes[i].up { restart(i) }
            }
        }
    }

    mutating func restart(_ i: Int) {
        nodes[i].up = true
        nodes[i].epoch += 1
        nodes[i].generation += 1
        nodes[i].gossiper = Self.gossiper(i, generation: nodes[i].generation, ring: ring)
        queue.push(now + Int64.random(in: 0..<1_000_000_000, using: &rng), .gossipTick(i, epoch: nodes[i].epoch))
        queue.push(now + 100_000_000, .tick(i, epoch: nodes[i].epoch))
    }

    mutating func send(_ message: Message, from: Int, to: Int) {
        if from == to {
            queue.push(now, .deliver(from: from, to: to, message))
            return
        }
        guard side[from] == side[to], Double.random(in: 0..<1, using: &rng) >= lossRate else { return }
        var delay = Int64.random(in: 200_000...20_000_000, using: &rng)
        if Int.random(in: 0..<50, using: &rng) == 0 { delay += 300_000_000 }  // a slow path reorders
        queue.push(now + delay, .deliver(from: from, to: to, message))
    }

    func index(of node: NodeID) -> Int { Int(node.id.dropFirst(4))! }

    mutating func perform(_ actions: [GossipAction], at i: Int) {
        for a in actions {
            if case .send(let msg, let address) = a,
               let j = nodes.firstIndex(where: { $0.id.address == address }) {
                send(.gossip(msg), from: i, to: j)
            }
        }
    }

    // MARK: Replica side

    mutating func apply(_ m: Mutation, at i: Int) {
        let existing = nodes[i].store[m.partitionKey] ?? ReplicaReadResult()
        nodes[i].store[m.partitionKey] = ReadResolver.merge([existing, ReplicaReadResult(header: m.header, rows: m.rows)])
    }

    /// A replica's answer as the engine's raw read gives it: rows in query order after the
    /// cursor, dead rows included, stopping after `limit` rows live by this node's clock and
    /// saying where.
    func slice(_ q: SliceQuery, at i: Int) -> ReplicaReadResult {
        let stored = nodes[i].store[q.partitionKey] ?? ReplicaReadResult()
        let nowSeconds = wallMicros(i) / 1_000_000
        var rows = q.reversed ? Array(stored.rows.reversed()) : stored.rows
        if let c = q.cursor {
            rows = rows.filter { q.reversed ? compareBytes($0.clustering, c) < 0 : compareBytes($0.clustering, c) > 0 }
        }
        var out = ReplicaReadResult(header: stored.header)
        var live = 0
        for row in rows {
            out.rows.append(row)
            guard row.fragment.isLive(now: nowSeconds) else { continue }
            live += 1
            if live == q.limit { out.cursor = row.clustering; break }
        }
        return out
    }

    mutating func receive(_ message: Message, from: Int, at i: Int) {
        switch message {
        case .gossip(let g):
            perform(nodes[i].gossiper.receive(g, now: instant), at: i)
        case .mutate(let req, let m):
            apply(m, at: i)
            send(.writeAck(req), from: i, to: from)
        case .repair(let req, let m):
            apply(m, at: i)
            send(.repairAck(req), from: i, to: from)
        case .hint(let id, let m):
            apply(m, at: i)
            send(.hintAck(id), from: i, to: from)
        case .readData(let req, let q):
            send(.data(req, slice(q, at: i)), from: i, to: from)
        case .readDigest(let req, let q):
            send(.digest(req, slice(q, at: i).digest()), from: i, to: from)
        case .writeAck(let req):
            guard var w = nodes[i].writes[req] else { return }
            let actions = w.0.onAck(from: nodes[from].id)
            nodes[i].writes[req] = w
            writeActions(actions, request: req, at: i)
        case .data(let req, let result):
            guard var r = nodes[i].reads[req] else { return }
            let actions = r.0.onData(from: nodes[from].id, result)
            nodes[i].reads[req] = r
            readActions(actions, request: req, at: i)
        case .digest(let req, let d):
            guard var r = nodes[i].reads[req] else { return }
            let actions = r.0.onDigest(from: nodes[from].id, d)
            nodes[i].reads[req] = r
            readActions(actions, request: req, at: i)
        case .repairAck(let req):
            guard var r = nodes[i].reads[req] else { return }
            let actions = r.0.onRepairAck(from: nodes[from].id)
            nodes[i].reads[req] = r
            readActions(actions, request: req, at: i)
        case .hintAck(let id):
            if !nodes[i].hints.onReplayAck(id: id).isEmpty { stats.hintsReplayed += 1 }
        }
    }

    mutating func tick(_ i: Int) {
        for req in nodes[i].writes.keys.sorted() {
            guard var w = nodes[i].writes[req] else { continue }
            let actions = w.0.onTick(now: instant)
            nodes[i].writes[req] = w
            writeActions(actions, request: req, at: i)
        }
        for req in nodes[i].reads.keys.sorted() {
            guard var r = nodes[i].reads[req] else { continue }
            let actions = r.0.onTick(now: instant)
            nodes[i].reads[req] = r
            readActions(actions, request: req, at: i)
        }
        let gossiper = nodes[i].gossiper
        for action in nodes[i].hints.onTick(now: instant, isAlive: { gossiper.isAlive($0) }) {
            if case .replay(let h) = action { send(.hint(h.id, h.mutation), from: i, to: index(of: h.target)) }
        }
    }

    // MARK: Coordinator side

    mutating func writeActions(_ actions: [WriteCoordinator.Action], request: UInt64, at i: Int) {
        guard let op = nodes[i].writes[request]?.op else { return }
        for a in actions {
            switch a {
            case .send(let m, let to): send(.mutate(request, m), from: i, to: index(of: to))
            case .storeHint(let m, let target):
                _ = nodes[i].hints.store(m, for: target, targetDownSince: nodes[i].gossiper.downSince(target), now: instant)
            case .succeeded:
                stats.acked += 1
                switch ops[op] {
                case .write(let k): writes[k].acked = true; writes[k].ackedAt = now
                case .delete(let k): deletes[k]!.acked = true
                default: break
                }
            case .failed(let e):
                if e.code == .unavailable { stats.unavailable += 1 } else { stats.timeouts += 1 }
            }
        }
        if nodes[i].writes[request]!.0.isFinished { nodes[i].writes[request] = nil }
    }

    mutating func readActions(_ actions: [ReadCoordinator.Action], request: UInt64, at i: Int) {
        guard let op = nodes[i].reads[request]?.op else { return }
        for a in actions {
            switch a {
            case .requestData(let q, let from): send(.readData(request, q), from: i, to: index(of: from))
            case .requestDigest(let q, let from): send(.readDigest(request, q), from: i, to: index(of: from))
            case .sendRepair(let m, let to): stats.repairs += 1; send(.repair(request, m), from: i, to: index(of: to))
            case .succeeded(let result): readSucceeded(result, op: op, at: i)
            case .failed(let e):
                if e.code == .unavailable { stats.unavailable += 1 } else { stats.timeouts += 1 }
            }
        }
        if nodes[i].reads[request]!.0.isFinished { nodes[i].reads[request] = nil }
    }

    mutating func startWrite(_ m: Mutation, op: Int, at i: Int) {
        let token = Token(partitionKey: m.partitionKey)
        let gossiper = nodes[i].gossiper
        var w = WriteCoordinator(mutation: m, replicas: ring.replicas(for: token, replicationFactor: Self.rf),
                                 consistency: .quorum, replicationFactor: Self.rf,
                                 isAlive: { gossiper.isAlive($0) }, now: instant)
        let actions = w.start()
        nodes[i].nextRequest += 1
        let req = nodes[i].nextRequest
        nodes[i].writes[req] = (w, op)
        writeActions(actions, request: req, at: i)
    }

    mutating func startRead(chat: Int64, op: Int, at i: Int, limit: Int = 100_000, cursor: [UInt8]? = nil) {
        var q = ChatMessages.latest(chatId: chat, limit: limit)
        q.cursor = cursor
        let token = Token(partitionKey: q.partitionKey)
        let gossiper = nodes[i].gossiper
        // Prefer this node, as a real coordinator does, then ring order.
        var replicas = ring.replicas(for: token, replicationFactor: Self.rf)
        if let me = replicas.firstIndex(of: nodes[i].id) { replicas.insert(replicas.remove(at: me), at: 0) }
        var r = ReadCoordinator(query: q, replicas: replicas, consistency: .quorum, replicationFactor: Self.rf,
                                isAlive: { gossiper.isAlive($0) }, now: instant, nowSeconds: wallMicros(i) / 1_000_000)
        let actions = r.start()
        nodes[i].nextRequest += 1
        let req = nodes[i].nextRequest
        nodes[i].reads[req] = (r, op)
        readActions(actions, request: req, at: i)
    }

    mutating func clientOp() {
        let live = nodes.indices.filter { nodes[$0].up }
        guard let i = live.randomElement(using: &rng) else { return }
        let roll = Int.random(in: 0..<10, using: &rng)
        let deletable = writes.indices.filter { writes[$0].acked && deletes[$0] == nil }
        if roll < 6 || (roll < 8 && deletable.isEmpty) {
            let k = writes.count
            let chat = Self.chats.randomElement(using: &rng)!
            let ts = wallMicros(i)
            let m = ChatMessages.mutation(chatId: chat, timestamp: Int64(k), messageId: "m\(k)", sender: "n\(i)",
                                          body: "v\(k)", writeTime: ts)
            writes.append(WriteRecord(chat: chat, clustering: m.rows[0].clustering, timestamp: ts))
            ops.append(.write(k))
            startWrite(m, op: ops.count - 1, at: i)
        } else if roll < 8 {
            let k = deletable.randomElement(using: &rng)!
            let ts = wallMicros(i)
            deletes[k] = DeleteRecord(timestamp: ts)
            let m = Mutation(table: ChatMessages.table, partitionKey: ChatMessages.partitionKey(chatId: writes[k].chat),
                             rows: [.init(clustering: writes[k].clustering,
                                          fragment: RowFragment(deletion: DeletionTime(timestamp: ts, localDeletionTime: ts / 1_000_000)))])
            ops.append(.delete(k))
            startWrite(m, op: ops.count - 1, at: i)
        } else {
            let chat = Self.chats.randomElement(using: &rng)!
            // Every QUORUM write acknowledged before the read starts must be visible to it.
            let expected = writes.indices.filter { writes[$0].chat == chat && writes[$0].acked && deletes[$0] == nil }
            ops.append(.read(chat: chat, expected: expected))
            // Small pages over tombstones: the read pages to the end of the partition.
            let limit = Int.random(in: 1...4, using: &rng)
            paging[ops.count - 1] = Paging(limit: limit)
            startRead(chat: chat, op: ops.count - 1, at: i, limit: limit)
        }
    }

    mutating func readSucceeded(_ result: ReadResult, op: Int, at i: Int) {
        stats.reads += 1
        switch ops[op] {
        case .read(let chat, let expected):
            guard var p = paging[op] else { return }
            p.rows += result.rows.map(\.clustering)
            p.pages += 1
            paging[op] = p
            if let cursor = result.cursor {
                if result.rows.count != p.limit {
                    failures.append("QUORUM read of chat \(chat) at \(now) ns: page \(p.pages) of \(result.rows.count) rows (limit \(p.limit)) has a cursor")
                }
                startRead(chat: chat, op: op, at: i, limit: p.limit, cursor: cursor)
                return
            }
            paging[op] = nil
            if result.rows.count >= p.limit {
                failures.append("QUORUM read of chat \(chat) at \(now) ns: a full last page without a cursor")
            }
            // Newest first, each row once.
            if zip(p.rows, p.rows.dropFirst()).contains(where: { compareBytes($0, $1) <= 0 }) {
                failures.append("QUORUM read of chat \(chat) at \(now) ns: pages out of order or repeating a row")
            }
            let seen = Set(p.rows)
            for k in expected where deletes[k] == nil && !seen.contains(writes[k].clustering) {
                failures.append("QUORUM read of chat \(chat) at \(now) ns missed acknowledged write m\(k)")
            }
        case .check(let chat):
            finalResults[chat] = result
        default: break
        }
    }

    // MARK: Checks

    func gossipConverged() -> Bool {
        for a in nodes where a.up {
            for b in nodes where b.id != a.id {
                guard b.up, a.gossiper.isAlive(b.id),
                      let s = a.gossiper.state(of: b.id), s.heartbeat.generation == b.generation,
                      s.status == .normal else { return false }
            }
        }
        return true
    }

    /// QUORUM reads of every chat after the run, on a quiet network; then the model check.
    mutating func finalReads() {
        lossRate = 0
        side = Array(repeating: 0, count: nodes.count)
        for i in nodes.indices where !nodes[i].up { restart(i) }
        for chat in Self.chats {
            for attempt in 0..<5 where finalResults[chat] == nil {
                ops.append(.check(chat: chat))
                startRead(chat: chat, op: ops.count - 1, at: attempt % nodes.count)
                let deadline = now + 6_000_000_000
                while finalResults[chat] == nil, let (t, event) = queue.pop(), t <= deadline {
                    now = t
                    handle(event)
                }
            }
            guard let result = finalResults[chat] else {
                failures.append("final QUORUM read of chat \(chat) never succeeded")
                continue
            }
            var visible: [[UInt8]: String] = [:]
            for row in result.rows {
                visible[row.clustering] = String(decoding: row.value(ChatMessages.bodyColumn) ?? [], as: UTF8.self)
            }
            for k in writes.indices where writes[k].chat == chat {
                let w = writes[k]
                let body = visible.removeValue(forKey: w.clustering)
                if let body, body != "v\(k)" { failures.append("m\(k) has body \(body)") }
                let deleteWins = deletes[k].map { $0.acked && $0.timestamp >= w.timestamp } ?? false
                if w.acked, deletes[k] == nil, body == nil {
                    failures.append("acknowledged QUORUM write m\(k) (chat \(chat)) lost")
                }
                if deleteWins, body != nil {
                    failures.append("acknowledged delete of m\(k) (chat \(chat)) resurrected")
                }
            }
            if !visible.isEmpty { failures.append("chat \(chat) has rows nobody wrote: \(visible.count)") }
        }
    }
}

/// A binary min-heap of events by (time, insertion order): ties run in the order scheduled.
struct EventQueue {
    private var heap: [(time: Int64, seq: UInt64, event: RingSimulation.Event)] = []
    private var seq: UInt64 = 0

    mutating func push(_ time: Int64, _ event: RingSimulation.Event) {
        seq += 1
        heap.append((time, seq, event))
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard less(i, p) else { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> (Int64, RingSimulation.Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, less(l, m) { m = l }
            if r < heap.count, less(r, m) { m = r }
            guard m != i else { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.event)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        (heap[a].time, heap[a].seq) < (heap[b].time, heap[b].seq)
    }
}
