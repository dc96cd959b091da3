import ConfabEngine
import ConfabNode
import ConfabRing
import Testing

@Suite struct NodeConfigurationTests {
    @Test func configFileThenFlags() throws {
        var c = NodeConfiguration(dataDirectory: "")
        c.tables = TestSchema.registry
        try c.apply(
            configFileContents: """
                # a node
                data_dir = /tmp/x
                listen = 0.0.0.0:7500   # all interfaces
                seeds = 127.0.0.1:7401, 127.0.0.1:7402
                vnodes = 32
                sync = periodic:50

                """, path: "node.conf")
        #expect(c.dataDirectory == "/tmp/x")
        #expect(c.listen == NodeAddress(host: "0.0.0.0", port: 7500))
        #expect(c.seeds == [NodeAddress(host: "127.0.0.1", port: 7401), NodeAddress(host: "127.0.0.1", port: 7402)])
        #expect(c.vnodes == 32)
        #expect(c.syncMode == .periodic(milliseconds: 50))
        try c.set("vnodes", "8")
        #expect(c.vnodes == 8)
    }

    @Test func errorsNameTheLineAndTheKey() {
        var c = NodeConfiguration(dataDirectory: "")
        c.tables = TestSchema.registry
        #expect(throws: NodeError(.invalidConfiguration, "node.conf:2: vnodes = many: expected an integer in 1...1024"))
        {
            try c.apply(configFileContents: "listen = :1\nvnodes = many\n", path: "node.conf")
        }
        let e = #expect(throws: NodeError.self) { try c.apply(configFileContents: "colour = red", path: "f") }
        #expect(e?.message.contains("unknown key \"colour\"") == true)
        #expect(throws: NodeError.self) { try c.apply(configFileContents: "just words", path: "f") }
        #expect(throws: NodeError.self) { try NodeConfiguration(dataDirectory: "").validate() }
    }

    /// The group commit window is the node's to set; a quiet interval that does not fit in the
    /// window is refused with both keys named, before any engine opens.
    @Test func groupCommitWindowKeys() throws {
        var c = NodeConfiguration(dataDirectory: "/tmp/x")
        #expect(c.groupCommit == GroupCommitWindow(quietMicros: 250, windowMicros: 2_000, maxWrites: 32))
        try c.apply(
            configFileContents: "wal_group_window_us = 1000\nwal_group_quiet_us = 100\nwal_group_max_writes = 0\n",
            path: "node.conf")
        #expect(c.groupCommit == GroupCommitWindow(quietMicros: 100, windowMicros: 1_000, maxWrites: 0))
        try c.validate()
        #expect(throws: NodeError.self) { try c.set("wal_group_window_us", "-1") }
        #expect(throws: NodeError.self) { try c.set("wal_group_quiet_us", "soon") }
        try c.set("wal_group_quiet_us", "1500")
        let e = #expect(throws: NodeError.self) { try c.validate() }
        #expect(e?.message.contains("wal_group_quiet_us = 1500 is above wal_group_window_us = 1000") == true)
    }
}
