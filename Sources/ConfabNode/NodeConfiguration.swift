import ConfabEngine
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation

/// Everything `confab node` is told at startup. Read from a config file (docs/node.md § Config
/// file: `key = value` lines, `#` comments) and then overridden by command-line flags.
public struct NodeConfiguration: Sendable, Hashable {
    /// Holds the engine (`engine/`: WAL, SSTables, MANIFEST) and the node id (`node-id`).
    public var dataDirectory: String
    /// Where the node listens for clients and peers; port 0 picks a free port.
    public var listen: NodeAddress = NodeAddress(host: "127.0.0.1", port: NodeAddress.defaultPort)
    /// Peers to contact first when joining a ring; none (or only itself) forms a new ring.
    public var seeds: [NodeAddress] = []
    /// Tokens this node owns on the ring (Cassandra's num_tokens).
    public var vnodes: Int = 16
    /// Replicas per key. A ring with fewer normal nodes than this uses all of them (so a lone
    /// node serves RF 1; see docs/ring.md § Runtime).
    /// Set through the config file or a flag, it is the factor of every keyspace (then
    /// `keyspaceReplication` overrides single keyspaces); left alone, each keyspace keeps the
    /// schema's factor (3). See docs/ring.md § Keyspaces.
    public var replicationFactor: Int = SchemaRegistry.defaultReplicationFactor {
        didSet { replicationFactorIsSet = true }
    }
    /// Whether `replicationFactor` was set (so it applies to every keyspace).
    public private(set) var replicationFactorIsSet = false
    /// Replication factor per keyspace (`replication = confab=3,chat=1`), over `replicationFactor`.
    /// Every node of a ring must be given the same factors.
    public var keyspaceReplication: [String: Int] = [:]
    /// When writes are acknowledged relative to the WAL's fdatasync (see `SyncMode`).
    public var syncMode: SyncMode = .group
    /// How long `group` sync gathers writes before each fdatasync (`GroupCommitWindow`).
    public var groupCommit = GroupCommitWindow()
    /// Nodes only talk to nodes of the same cluster.
    public var clusterName: String = "confab"
    /// Requests one connection may have running at once; further frames wait unread (TCP
    /// backpressure reaches the client).
    public var maxInFlightPerConnection: Int = 128
    /// Largest frame body accepted or sent.
    public var maxFrameBytes: Int = FrameHeader.defaultMaxBodyBytes
    /// Threads that run blocking engine reads and startup/shutdown (open, close).
    public var ioThreads: Int = 4
    /// Event-loop threads (NIO's singleton group), nil for one per core. Read by the `confab node`
    /// process before it starts anything; an embedder passes its own group to `Node` instead.
    /// Why settable: nodes sharing a machine (a local ring) each starting a loop per core
    /// oversubscribe it, and every request then wakes more sleeping threads — `confab ring start`
    /// gives each node its share of the cores, as ccm runs co-located Scylla nodes with `--smp 1`.
    public var eventLoopThreads: Int?
    /// Bytes of memtable before a flush.
    public var memtableBytes: Int = 64 << 20
    /// Load each flushed SSTable's blocks into the block cache (`EngineOptions.cacheFlushedTables`).
    /// Off only where a test damages a freshly flushed file and needs the read to meet the damage.
    public var cacheFlushedTables = true
    /// No hints are kept for a replica down longer than this (Cassandra's max_hint_window, 3 h).
    public var hintWindow: Duration = .seconds(3 * 3600)
    /// Hint replay throttle in bytes per second over all targets (hinted_handoff_throttle, 1 MiB/s).
    public var hintReplayBytesPerSecond: Int = 1 << 20
    /// How often the node gossips (Cassandra: 1 s). The failure detector's first-sample guess
    /// scales with it, so conviction takes about 18 intervals of silence at the default threshold.
    public var gossipInterval: Duration = .seconds(1)
    /// Phi above which a silent peer is convicted (Cassandra's phi_convict_threshold, 8).
    public var phiConvictThreshold: Double = 8
    /// How long a coordinator waits for write acknowledgements (write_request_timeout, 2 s).
    public var writeTimeout: Duration = .seconds(2)
    /// How long a coordinator waits for a read, its digests and its read repair (5 s).
    public var readTimeout: Duration = .seconds(5)
    /// How long a node waits after announcing a ring change (JOINING with tokens, LEAVING, LEFT)
    /// before acting on it, so every coordinator has learned it by gossip (Cassandra's
    /// ring_delay, 30 s; a few gossip rounds reach every node of a small ring). Nil: five gossip
    /// intervals (5 s at the default interval), so rings that gossip fast also move fast.
    public var ringDelay: Duration? = nil
    /// Whether a new node joining a ring that has NORMAL members streams its ranges before going
    /// NORMAL (Cassandra's auto_bootstrap). `confab ring start` turns it off for the first start
    /// of a brand-new ring's nodes, which hold no data yet.
    public var autoBootstrap = true
    /// The ring's shared secret: connections must answer a challenge with it before they may send
    /// operator or internode messages, and this node answers its peers' challenges with it
    /// (docs/security.md). Nil: no authentication at all — any connection may act as a node or an
    /// operator; for in-process tests, and `confab node --insecure-no-cluster-secret` only.
    public var clusterSecret: ClusterSecret? = nil
    /// TLS on the node's port and to other nodes (`NodeTLS`); nil, the default, is plain TCP.
    public var tls: NodeTLS? = nil

    /// The tables this node serves, at their keyspaces' default factors. The node has no DDL yet
    /// and knows no tables of its own: its embedder declares them (the `confab` executable gives
    /// the chat layer's `ChatSchema.registry`). Set it before `set`/`load`, which check keyspace
    /// names against it.
    public var tables: SchemaRegistry

    public init(dataDirectory: String, tables: SchemaRegistry = .empty) {
        self.dataDirectory = dataDirectory
        self.tables = tables
    }

    /// The tables this node serves, with the replication factors this configuration gives their
    /// keyspaces.
    public var schema: SchemaRegistry {
        tables.withReplication(
            default: replicationFactorIsSet ? replicationFactor : nil,
            overrides: keyspaceReplication)
    }

    /// The engine's directory inside the data directory.
    public var engineDirectory: String { (dataDirectory as NSString).appendingPathComponent("engine") }

    /// The hint store's engine directory inside the data directory.
    public var hintsDirectory: String { (dataDirectory as NSString).appendingPathComponent("hints") }

    /// The keys a config file may set, with what each means (also shown by `confab node --help`).
    public static let keys: [(key: String, help: String)] = [
        ("data_dir", "data directory (engine files and node id)"),
        ("listen", "host:port to listen on for clients and peers (port 0: any free port)"),
        ("seeds", "comma-separated host:port of seed nodes"),
        ("vnodes", "number of vnode tokens (default 16)"),
        ("replication_factor", "replicas per key for every keyspace (default 3; a ring of fewer nodes uses them all)"),
        ("replication", "replication factor per keyspace, e.g. confab=3,chat=1 (overrides replication_factor)"),
        ("sync", "WAL sync mode: batch, group (default) or periodic[:MS]"),
        ("wal_group_window_us", "group sync: longest wait for more writes before an fdatasync, in µs (default 2000)"),
        (
            "wal_group_quiet_us",
            "group sync: stop waiting once no write came for this many µs (default 250; at most the window)"
        ),
        (
            "wal_group_max_writes",
            "group sync: stop waiting once this many writes share the fdatasync (default 32; 0: no limit)"
        ),
        ("cluster_name", "cluster name (default confab)"),
        ("max_in_flight", "requests running at once per connection (default 128)"),
        ("max_frame_bytes", "largest frame body in bytes (default 67108864)"),
        ("io_threads", "threads for blocking engine reads (default 4)"),
        ("event_loop_threads", "event-loop threads (default one per core)"),
        ("memtable_bytes", "memtable size before a flush (default 67108864)"),
        ("hint_window_seconds", "keep hints only for replicas down less than this (default 10800)"),
        ("hint_replay_bytes_per_second", "hint replay throttle (default 1048576)"),
        ("gossip_interval_ms", "gossip round interval (default 1000)"),
        ("phi_convict_threshold", "failure detector threshold (default 8)"),
        ("write_timeout_ms", "coordinator write timeout (default 2000)"),
        ("read_timeout_ms", "coordinator read timeout (default 5000)"),
        ("ring_delay_ms", "wait after announcing a join or leave before streaming (default 5 gossip intervals)"),
        ("auto_bootstrap", "stream data when joining a ring that has normal nodes: true (default) or false"),
    ]

    /// Sets one key from a config file line or a flag. Throws `invalidConfiguration` naming the
    /// key and what is accepted.
    public mutating func set(_ key: String, _ rawValue: String, source: String = "flag") throws(NodeError) {
        let value = rawValue.trimmingCharacters(in: .whitespaces)
        func bad(_ expected: String) -> NodeError {
            NodeError(
                .invalidConfiguration, "\(source): \(key) = \(value.isEmpty ? "(empty)" : value): expected \(expected)")
        }
        func int(_ range: ClosedRange<Int>) throws(NodeError) -> Int {
            guard let n = Int(value), range.contains(n) else {
                throw bad("an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        switch key {
        case "data_dir":
            guard !value.isEmpty else { throw bad("a directory path") }
            dataDirectory = value
        case "listen":
            guard let a = NodeAddress(hostPort: value) else { throw bad("host:port, e.g. 127.0.0.1:7400") }
            listen = a
        case "seeds":
            var out: [NodeAddress] = []
            for part in value.split(separator: ",") where !part.trimmingCharacters(in: .whitespaces).isEmpty {
                guard let a = NodeAddress(hostPort: String(part)), a.port > 0 else {
                    throw bad("comma-separated host:port")
                }
                out.append(a)
            }
            seeds = out
        case "vnodes": vnodes = try int(1...1024)
        case "replication_factor": replicationFactor = try int(1...16)
        case "replication":
            var out: [String: Int] = [:]
            let known = tables.keyspaces.map(\.name)
            for part in value.split(separator: ",") where !part.trimmingCharacters(in: .whitespaces).isEmpty {
                let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2, let n = Int(pair[1]), (1...16).contains(n) else {
                    throw bad("comma-separated keyspace=N with N in 1...16, e.g. confab=3,chat=1")
                }
                guard known.contains(pair[0]) else {
                    throw bad("keyspaces this node serves (\(known.joined(separator: ", "))), not \"\(pair[0])\"")
                }
                out[pair[0]] = n
            }
            keyspaceReplication = out
        case "sync":
            guard let m = SyncMode(parsing: value) else { throw bad("batch, group, periodic or periodic:MS") }
            syncMode = m
        case "wal_group_window_us": groupCommit.windowMicros = try int(0...1_000_000)
        case "wal_group_quiet_us": groupCommit.quietMicros = try int(0...1_000_000)
        case "wal_group_max_writes": groupCommit.maxWrites = try int(0...1_000_000)
        case "cluster_name":
            guard !value.isEmpty, value.utf8.count <= 255 else { throw bad("a name of 1...255 bytes") }
            clusterName = value
        case "max_in_flight": maxInFlightPerConnection = try int(1...65536)
        case "max_frame_bytes": maxFrameBytes = try int(1024...(1 << 30))
        case "io_threads": ioThreads = try int(1...256)
        case "event_loop_threads": eventLoopThreads = try int(1...1024)
        case "memtable_bytes": memtableBytes = try int((1 << 16)...(1 << 34))
        case "hint_window_seconds": hintWindow = .seconds(try int(0...(30 * 24 * 3600)))
        case "hint_replay_bytes_per_second": hintReplayBytesPerSecond = try int(1024...(1 << 34))
        case "gossip_interval_ms": gossipInterval = .milliseconds(try int(10...60_000))
        case "phi_convict_threshold":
            guard let v = Double(value), v >= 1, v <= 100 else { throw bad("a number in 1...100") }
            phiConvictThreshold = v
        case "write_timeout_ms": writeTimeout = .milliseconds(try int(10...600_000))
        case "read_timeout_ms": readTimeout = .milliseconds(try int(10...600_000))
        case "ring_delay_ms": ringDelay = .milliseconds(try int(0...600_000))
        case "auto_bootstrap":
            switch value.lowercased() {
            case "true", "yes", "1": autoBootstrap = true
            case "false", "no", "0": autoBootstrap = false
            default: throw bad("true or false")
            }
        default:
            throw NodeError(
                .invalidConfiguration,
                "\(source): unknown key \"\(key)\"; known keys: \(Self.keys.map(\.key).joined(separator: ", "))")
        }
    }

    /// Applies a config file's `key = value` lines on top of `self`.
    public mutating func apply(configFileContents text: String, path: String) throws(NodeError) {
        for (i, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw NodeError(.invalidConfiguration, "\(path):\(i + 1): expected key = value, got \"\(trimmed)\"")
            }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            try set(key, String(trimmed[trimmed.index(after: eq)...]), source: "\(path):\(i + 1)")
        }
    }

    /// Reads a config file. `data_dir` may be left out when a flag provides it.
    public static func load(file path: String, base: NodeConfiguration = NodeConfiguration(dataDirectory: ""))
        throws(NodeError) -> NodeConfiguration
    {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw NodeError(.invalidConfiguration, "cannot read config file \(path): \(error.localizedDescription)")
        }
        var config = base
        try config.apply(configFileContents: text, path: path)
        return config
    }

    /// Checks what cannot be checked per key.
    public func validate() throws(NodeError) {
        guard !dataDirectory.isEmpty else {
            throw NodeError(
                .invalidConfiguration, "no data directory: pass --data-dir or set data_dir in the config file")
        }
        guard groupCommit.quietMicros <= groupCommit.windowMicros else {
            throw NodeError(
                .invalidConfiguration,
                "wal_group_quiet_us = \(groupCommit.quietMicros) is above wal_group_window_us = \(groupCommit.windowMicros): the quiet interval must fit in the window; lower it or raise the window"
            )
        }
    }
}
