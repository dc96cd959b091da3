import ArgumentParser
import ConfabChat
import ConfabClient
import ConfabNode
import ConfabRing
import ConfabTransport
import ConfabWire
import Foundation
import Logging
import NIOCore

/// `confab chat serve`: one chat server process in the foreground until SIGTERM or SIGINT.
struct ChatServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run one chat server: HTTP API, WebSocket, long polling and the web client.",
        discussion: """
            The server keeps no data: accounts, chats and messages are in the ring given by --nodes \
            (QUORUM reads and writes). Once listening it prints one line, \
            "confab chat <server-id> listening on http://<host>:<port>", on standard output; open that \
            URL in a browser. SIGTERM or SIGINT stops it gracefully (exit 0). Every chat server of \
            one deployment must use the same token secret, or tokens from one are refused by the \
            others: --secret-file, or the file named by $CONFAB_CHAT_SECRET_FILE. A secret is never \
            taken on the command line, where other users can read it (ps, /proc).
            """)

    @Option(help: ArgumentHelp("Port to listen on; 0 picks a free one (printed). Default 8080.", valueName: "port"))
    var port: Int = 8080

    @Option(help: ArgumentHelp("Address to listen on (default 127.0.0.1).", valueName: "host"))
    var host: String = "127.0.0.1"

    @Option(
        help: ArgumentHelp(
            """
            Address of the listener for the other chat servers' peer links (never the public port). \
            Default 127.0.0.1:0 (a free loopback port, published in the server's heartbeat row); \
            servers on several hosts need an address the others reach, firewalled from users.
            """,
            valueName: "host:port"))
    var peerListen: String = "127.0.0.1:0"

    @Option(
        name: .customLong("node-tls-ca"),
        help: ArgumentHelp(
            "Connect to the ring's nodes over TLS, trusting these PEM CA certificates (nodes run with --tls-cert).",
            valueName: "file"))
    var nodeTLSCA: String?

    @Option(
        help: ArgumentHelp(
            "Comma-separated ring nodes (default 127.0.0.1:\(NodeAddress.defaultPort)).", valueName: "host:port,..."))
    var nodes: String = "127.0.0.1:\(NodeAddress.defaultPort)"

    @Option(
        name: .customLong("server-id"),
        help: ArgumentHelp("Unique id of this chat server (default: random).", valueName: "id"))
    var serverId: String?

    @Option(
        name: .customLong("secret-file"),
        help: ArgumentHelp(
            "File holding the token secret shared by the deployment's chat servers (default: $CONFAB_CHAT_SECRET_FILE); created 0600 with a random one if missing, refused if group or others may read it.",
            valueName: "file"))
    var secretFile: String?

    /// The environment variable naming the secret file.
    static let secretFileVariable = "CONFAB_CHAT_SECRET_FILE"

    @Option(
        name: .customLong("password-rounds"),
        help: ArgumentHelp("PBKDF2 rounds for new passwords (default 210000).", valueName: "n"))
    var passwordRounds: Int?

    @Option(
        name: .customLong("heartbeat-ttl"),
        help: ArgumentHelp(
            "Seconds before a silent chat server leaves the others' live set (default 10; heartbeats every third of it).",
            valueName: "s"))
    var heartbeatTTL: Int32 = 10

    @Option(
        name: .customLong("max-connections"),
        help: ArgumentHelp(
            "WebSocket connections to accept before refusing new ones with server_full (close 1013). Default: the descriptor limit minus 1,000.",
            valueName: "n"))
    var maxConnections: Int?

    @Option(
        name: .customLong("ping-interval"),
        help: ArgumentHelp(
            "Seconds between the server's pings on each WebSocket; a socket that answered none of the previous ping is closed, so a device gone without a FIN leaves within two intervals (default 30, 1...3600).",
            valueName: "s"))
    var pingInterval: Int64 = 30

    @Option(
        name: .customLong("send-rate"),
        help: ArgumentHelp("Messages a second one user may send, refilled continuously (default 20).", valueName: "n"))
    var sendRate: Double = 20

    @Option(
        name: .customLong("send-burst"),
        help: ArgumentHelp("Messages one user may send at once before the rate applies (default 50).", valueName: "n"))
    var sendBurst: Double = 50

    @Option(
        name: .customLong("login-rate"),
        help: ArgumentHelp(
            "Login and sign-up attempts a second one client address may make, refilled continuously (default 1; each costs a password hash). The burst is 30.",
            valueName: "n"))
    var loginRate: Double = 1

    @Option(
        name: .customLong("login-burst"),
        help: ArgumentHelp(
            "Login and sign-up attempts one client address may make at once before --login-rate applies (default 30).",
            valueName: "n"))
    var loginBurst: Double = 30

    @Option(
        name: .customLong("clock-offset-ms"),
        help: ArgumentHelp(
            "For tests: run this server's clock this many milliseconds ahead (negative: behind) of the system's.",
            valueName: "ms"))
    var clockOffsetMs: Int64 = 0

    @Option(
        name: .customLong("event-loop-threads"),
        help: ArgumentHelp(
            "Event-loop threads (default one per core). Servers and nodes sharing a machine should split its cores.",
            valueName: "n"))
    var eventLoopThreads: Int?

    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp("trace, debug, info, notice, warning, error or critical (default info).", valueName: "level")
    )
    var logLevel: String = "info"

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp(
            "text (default) or json (one JSON object per line: time, level, label, message, metadata).",
            valueName: "format"))
    var logFormat: String = "text"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        _ = try peerAddress()
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        if let eventLoopThreads, !(1...1024).contains(eventLoopThreads) {
            throw ValidationError("--event-loop-threads must be between 1 and 1024")
        }
        guard (1...3600).contains(pingInterval) else {
            throw ValidationError("--ping-interval must be 1...3600 seconds (got \(pingInterval))")
        }
        guard (2...3600).contains(heartbeatTTL) else {
            throw ValidationError("--heartbeat-ttl must be 2...3600 seconds")
        }
        if let r = passwordRounds, r < 1000 { throw ValidationError("--password-rounds must be at least 1000") }
        guard sendRate > 0, sendBurst >= 1 else {
            throw ValidationError("--send-rate must be positive and --send-burst at least 1")
        }
        guard loginRate > 0, loginBurst >= 1 else {
            throw ValidationError("--login-rate must be positive and --login-burst at least 1")
        }
        _ = try addresses()
    }

    /// `--peer-listen` as (host, port); an IPv6 host in brackets.
    func peerAddress() throws -> (host: String, port: Int) {
        guard let colon = peerListen.lastIndex(of: ":"), let port = Int(peerListen[peerListen.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw ValidationError("--peer-listen \(peerListen): expected host:port, e.g. 127.0.0.1:0 or 10.0.0.5:7600")
        }
        var host = String(peerListen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("--peer-listen \(peerListen): the host is missing") }
        return (host, port)
    }

    func addresses() throws -> [NodeAddress] {
        try nodes.split(separator: ",").map { part in
            let text = part.trimmingCharacters(in: .whitespaces)
            guard let a = NodeAddress(hostPort: text), a.port > 0 else {
                throw ValidationError("--nodes \(text): expected host:port, e.g. 127.0.0.1:7400")
            }
            return a
        }
    }

    func loadSecret() throws -> [UInt8] {
        guard let path = secretFile ?? ProcessInfo.processInfo.environment[Self.secretFileVariable] else {
            FileHandle.standardError.write(
                Data(
                    "warning: no --secret-file: using a random secret; tokens will not survive a restart or work on other chat servers\n"
                        .utf8))
            return (0..<32).map { _ in UInt8.random(in: .min ... .max) }
        }
        do {
            let fresh = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
            try PrivateFile.createIfMissing(at: path, contents: Array((fresh + "\n").utf8))
            let bytes = try PrivateFile.contents(
                of: path, maxBytes: 4096,
                what: "the chat token secret lets anyone who has it sign in as any user")
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text.utf8.count >= 16 else { throw ValidationError("\(path) holds fewer than 16 bytes of secret") }
            return Array(text.utf8)
        } catch let error as PrivateFileError {
            throw ValidationError("chat token secret: \(error)")
        }
    }

    func run() throws {
        // Before anything uses NIO's singleton group (the listener, the ring client).
        if let eventLoopThreads { NIOSingletons.groupLoopCountSuggestion = eventLoopThreads }
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ValidationError("unknown --log-level \(logLevel)")
        }
        let format = try LogFormat.parse(logFormat)
        // Before any instrument exists (`ChatMetrics.shared` is made on first use).
        MetricsBootstrap.bootstrap()
        format.bootstrap(level: level)
        let descriptors = FileDescriptorLimit.raiseToHard()
        var config = ChatServerConfiguration(secret: try loadSecret())
        // Headroom for the ring client, peer links, the runtime and connections being refused.
        config.maxConnections = maxConnections ?? max(16, descriptors - 1_000)
        config.pingIntervalSeconds = pingInterval
        if let serverId { config.serverId = serverId }
        config.metricsExposition = MetricsBootstrap.exposition
        config.host = host
        config.port = port
        (config.peerHost, config.peerPort) = try peerAddress()
        if let passwordRounds { config.passwordRounds = passwordRounds }
        config.heartbeatTTLSeconds = heartbeatTTL
        config.sendsPerSecond = sendRate
        config.sendBurst = sendBurst
        config.credentialAttemptsPerSecondPerAddress = loginRate
        config.credentialAttemptBurstPerAddress = loginBurst
        if clockOffsetMs != 0 { config.clock = OffsetClock(offsetMicros: clockOffsetMs * 1000) }
        config.heartbeatInterval = .milliseconds(Int64(heartbeatTTL) * 1000 / 3)
        config.serverRefreshInterval = min(.seconds(2), .milliseconds(Int64(heartbeatTTL) * 1000 / 4))
        var clientConfig = ConfabClient.Configuration(nodes: try addresses())
        clientConfig.schema = ChatSchema.registry
        clientConfig.clientName = "confab-chat"
        clientConfig.tls = nodeTLSCA.map { NodeTLS(trustRootsPath: $0) }
        clientConfig.requestTimeout = .seconds(5)
        let client = ConfabClient(configuration: clientConfig)
        let server = ChatServer(configuration: config, storage: client)
        let shownId = config.serverId
        try runBlocking {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.runUntilTerminated() }
                group.addTask {
                    guard (try? await server.listeningPort()) != nil else { return }
                    let line = "confab chat \(shownId) listening on \(server.address)\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
                try await group.waitForAll()
            }
            await client.shutdown()
        }
    }
}
