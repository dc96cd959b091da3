import ArgumentParser
import ConfabClient
import ConfabRing
import ConfabWire

/// Options shared by the commands that talk to running nodes.
struct ClientOptions: ParsableArguments {
    @Option(name: .customLong("node"), parsing: .singleValue,
            help: ArgumentHelp("A node to send requests to, host:port; repeat for fallbacks (tried in turn).",
                               valueName: "host:port"))
    var nodes: [String] = ["127.0.0.1:\(NodeAddress.defaultPort)"]

    @Option(help: ArgumentHelp("Consistency level: one, two, quorum or all.", valueName: "level"))
    var consistency: String = "quorum"

    @Option(help: ArgumentHelp("Seconds to wait for a node's answer before trying the next.", valueName: "seconds"))
    var timeout: Double = 10

    func validate() throws {
        _ = try level()
        _ = try addresses()
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func level() throws -> ConsistencyLevel {
        guard let l = ConsistencyLevel(named: consistency) else {
            throw ValidationError("unknown consistency level \"\(consistency)\"; use one, two, quorum or all")
        }
        return l
    }

    func addresses() throws -> [NodeAddress] {
        try nodes.map { text in
            guard let a = NodeAddress(hostPort: text), a.port > 0 else {
                throw ValidationError("--node \(text): expected host:port, e.g. 127.0.0.1:7400")
            }
            return a
        }
    }

    func makeClient() throws -> ConfabClient {
        var config = ConfabClient.Configuration(nodes: try addresses())
        config.requestTimeout = .milliseconds(Int(timeout * 1000))
        config.clientName = "confab-cli"
        return ConfabClient(configuration: config)
    }
}
