import ArgumentParser
import ConfabProcess
import Foundation

/// `confab up`: the whole product on one machine — a local ring of node processes plus chat
/// servers in front of it — in the foreground until Ctrl-C.
///
/// Built from the pieces a person could run by hand (`confab ring start`, `confab chat serve`),
/// so what `up` does is never magic: the ring lives in `<dir>/` like any `ring start` ring and
/// outlives `up` only if `up` is killed hard (then `confab ring stop --dir <dir>` stops it).
struct UpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a local ring and chat servers, print the URL to open, stop everything on Ctrl-C.",
        discussion: """
            Starts (or restarts, with its data) the ring in --dir, then --chat-servers chat server \
            processes on 127.0.0.1 that share a signing secret (<dir>/chat-secret) and find each \
            other through the ring. Prints the URL of the first chat server; users are routed to \
            their own server by consistent hashing, whichever server the browser opens. Ctrl-C \
            (or SIGTERM) stops the chat servers, then the ring; data stays in --dir, so the next \
            `confab up` keeps every chat's history. Logs: <dir>/nodeN/node.log, <dir>/chatN/chat.log.
            """)

    @Option(
        help: ArgumentHelp(
            "Directory for the ring and the chat servers' logs (default: $CONFAB_RING_DIR, else ./confab-ring).",
            valueName: "dir"))
    var dir: String?

    @Option(
        help: ArgumentHelp("Nodes in a new ring (a stopped ring restarts with its recorded nodes).", valueName: "n"))
    var nodes: Int = 3

    @Option(name: .customLong("chat-servers"), help: ArgumentHelp("Chat server processes to run.", valueName: "n"))
    var chatServers: Int = 2

    @Option(
        help: ArgumentHelp(
            "HTTP port of the first chat server (the next ones use the following ports); 0 picks free ports.",
            valueName: "port"))
    var port: Int = 8080

    @Option(help: ArgumentHelp("Seconds to wait for the ring and each chat server to be ready.", valueName: "seconds"))
    var timeout: Double = 90

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp("Log format of the nodes and chat servers: text (default) or json.", valueName: "format"))
    var logFormat: String = "text"

    func validate() throws {
        _ = try LogFormat.parse(logFormat)
        guard (1...16).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 16") }
        guard (1...8).contains(chatServers) else { throw ValidationError("--chat-servers must be between 1 and 8") }
        guard port == 0 || (1...(65535 - chatServers)).contains(port) else {
            throw ValidationError("--port must be 0 or leave room for \(chatServers) ports below 65536")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let directory = RingFile.directory(dir)
        // Stop signals are handled, not fatal: the ring must be stopped on the way out.
        let stop = UpStopSignal()
        try RingCommand.guarded("up") {
            var chat = ChatServerGroup(
                directory: directory, timeout: .milliseconds(Int(timeout * 1000)), progress: RingCommand.progress)
            chat.stopStale()
            try startRing(directory: directory)
            do {
                let ports = try choosePorts()
                let urls = try chat.start(
                    count: chatServers, ports: ports, ringDirectory: directory, logFormat: logFormat)
                try chat.awaitReady(timeout: .milliseconds(Int(timeout * 1000)))
                print(
                    """

                    Confab is up: \(nodes)-node ring in \(directory), \(urls.count) chat server\(urls.count == 1 ? "" : "s").
                    Open \(urls[0]) in a browser (sign up two users in two windows to chat).
                    Other chat servers: \(urls.dropFirst().joined(separator: ", ").isEmpty ? "none" : urls.dropFirst().joined(separator: ", "))
                    A chat's history from the CLI: confab history CHAT_ID\(dir == nil ? "" : " --dir \(directory)") (the web client shows chat ids)
                    Press Ctrl-C to stop everything.
                    """)
                fflush(nil)  // all streams: Swift 6 refuses the global `stdout`
                if let dead = chat.waitForExit(orReadable: stop.descriptor) {
                    RingCommand.progress(
                        """
                        chat server \(dead.index) (pid \(dead.pid)) exited; stopping everything. The end of \(dead.log):
                        \(ServerProcess.tail(of: dead.log))
                        """)
                } else {
                    let name = stop.signal == SIGINT ? "SIGINT" : "SIGTERM"
                    RingCommand.progress("received \(name); stopping the chat servers…")
                }
            } catch {
                chat.stopAll()
                try? stopRing(directory: directory)
                throw error
            }
            chat.stopAll()
            try stopRing(directory: directory)
        }
    }

    private func startRing(directory: String) throws {
        var arguments = ["--dir", directory, "--timeout", String(timeout), "--log-format", logFormat]
        if (try? RingFile.load(from: directory)) == nil { arguments += ["--nodes", String(nodes)] }
        if let existing = try? RingFile.load(from: directory), !existing.runningNodes().isEmpty {
            RingCommand.progress("the ring in \(directory) is already running; using it")
            return
        }
        let start = try RingStartCommand.parse(arguments)
        try start.run()
    }

    private func stopRing(directory: String) throws {
        RingCommand.progress("stopping the ring…")
        try RingStopCommand.parse(["--dir", directory]).run()
    }

    private func choosePorts() throws -> [Int] {
        var ports: [Int] = []
        for i in 0..<chatServers {
            if port == 0 {
                var p = try LocalPorts.free()
                while ports.contains(p) { p = try LocalPorts.free() }
                ports.append(p)
            } else {
                let p = port + i
                guard LocalPorts.isFree(p) else {
                    throw RingCommandError(
                        .startFailed,
                        "port \(p) (chat server \(i + 1)) is in use; pass another --port, or --port 0 for free ports")
                }
                ports.append(p)
            }
        }
        return ports
    }
}
