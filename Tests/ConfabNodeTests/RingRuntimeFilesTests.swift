import ConfabEngine
import ConfabRing
import NIOPosix
import Testing

@testable import ConfabNode

/// The durable pieces of the ring runtime: tokens, gossip generation, hints.
@Suite struct RingRuntimeFilesTests {
    @Test func ringSettingsHaveCassandrasDefaultsAndParse() throws {
        var c = NodeConfiguration(dataDirectory: "/tmp/x")
        c.tables = TestSchema.registry
        #expect(c.replicationFactor == 3 && c.vnodes == 16)
        #expect(c.hintWindow == .seconds(3 * 3600) && c.hintReplayBytesPerSecond == 1 << 20)
        #expect(c.gossipInterval == .seconds(1) && c.phiConvictThreshold == 8)
        try c.apply(
            configFileContents: """
                hint_window_seconds = 60
                hint_replay_bytes_per_second = 4096
                gossip_interval_ms = 250
                phi_convict_threshold = 5.5
                write_timeout_ms = 300
                read_timeout_ms = 400
                """, path: "ring.conf")
        #expect(c.hintWindow == .seconds(60) && c.hintReplayBytesPerSecond == 4096)
        #expect(c.gossipInterval == .milliseconds(250) && c.phiConvictThreshold == 5.5)
        #expect(c.writeTimeout == .milliseconds(300) && c.readTimeout == .milliseconds(400))
        #expect(throws: NodeError.self) { try c.set("phi_convict_threshold", "0") }
        #expect(NodeConfiguration.keys.map(\.key).contains("hint_window_seconds"))
    }

    @Test func tokensPersistAndTheGenerationAlwaysGrows() throws {
        let dir = TempDirectory("confab-ring-files")
        #expect(try NodeStateFiles.loadTokens(dataDirectory: dir.path) == nil)
        let tokens = [Token(.min + 1), Token(-5), Token(0), Token(.max)]
        try NodeStateFiles.saveTokens(tokens.reversed(), dataDirectory: dir.path)
        #expect(try NodeStateFiles.loadTokens(dataDirectory: dir.path) == tokens)
        let g1 = try NodeStateFiles.nextGeneration(dataDirectory: dir.path, nowSeconds: 1000)
        // A clock that stepped back still gives a larger generation.
        let g2 = try NodeStateFiles.nextGeneration(dataDirectory: dir.path, nowSeconds: 10)
        #expect(g1 == 1000 && g2 == 1001)
        try NodeStateFiles.writeAtomically("garbage\n", to: "\(dir.path)/\(NodeStateFiles.tokensFile)")
        #expect(throws: NodeError.self) { try NodeStateFiles.loadTokens(dataDirectory: dir.path) }
    }

    @Test func hintsSurviveAReopenUntilDeleted() async throws {
        let dir = TempDirectory("confab-hints")
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let target = NodeID(id: "target-1", host: "127.0.0.1", port: 7401)
        let other = NodeID(id: "target-2", host: "127.0.0.1", port: 7402)
        let m1 = TestMessages.mutation(chatId: 1, timestamp: 1, messageId: "a", sender: "s", body: "one", writeTime: 10)
        let m2 = TestMessages.mutation(chatId: 2, timestamp: 2, messageId: "b", sender: "s", body: "two", writeTime: 20)
        var store = try await HintStore.open(directory: dir.path, threadPool: pool)
        try await store.persist(Hint(id: 1, target: target, mutation: m1, createdAt: .zero))
        try await store.persist(Hint(id: 2, target: target, mutation: m2, createdAt: .zero))
        try await store.persist(Hint(id: 3, target: other, mutation: m1, createdAt: .zero))
        try await store.delete(id: 1, target: target)
        try await store.close()

        store = try await HintStore.open(directory: dir.path, threadPool: pool)
        let recovered = try await store.recover(now: RingInstant(nanoseconds: 1_000_000_000_000)).sorted {
            $0.id < $1.id
        }
        #expect(recovered.map(\.id) == [2, 3])
        #expect(recovered[0].target == target && recovered[0].target.address == target.address)
        #expect(recovered[0].mutation == m2 && recovered[1].mutation == m1)
        // The age carries over (created moments ago, not at the ring clock's origin).
        #expect(RingInstant(nanoseconds: 1_000_000_000_000) - recovered[0].createdAt < .seconds(60))
        // What the queue is built from at start: the same hints without their mutations, which
        // are read back one at a time when replayed.
        let refs = try await store.recoverRefs(now: RingInstant(nanoseconds: 1_000_000_000_000)).sorted {
            $0.id < $1.id
        }
        #expect(refs.map(\.id) == [2, 3] && refs[0].target.address == target.address)
        #expect(refs.map(\.size) == [m2.encoded().count, m1.encoded().count])
        #expect(try await store.load(id: 2, target: target) == m2)
        #expect(try await store.load(id: 1, target: target) == nil)  // deleted
        // The queue continues numbering after the recovered hints.
        var queue = HintQueue(recovered: refs)
        guard case .persist(let next)? = queue.store(m1, for: target, targetDownSince: nil, now: .zero).first else {
            Issue.record("no persist")
            return
        }
        #expect(next.id == 4)
        try await store.close()
        try await pool.shutdownGracefully()
    }
}
