import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// The client side of the idle-connection phase: child processes of the bench (hidden command
/// `chat-idle-child`), each holding a share of the connections. Several processes, because one
/// process here may hold at most 20,000 descriptors (`ulimit -Hn`), and each binds its own
/// loopback source address, because one source address has only ~28,000 ephemeral ports.
final class IdleFleet {
    struct Outcome {
        var opened = 0
        var failed = 0
        var seconds = 0.0
        var firstError: String?
    }

    private var children: [(process: Process, stdin: Pipe, stdout: FileHandle)] = []

    /// Starts `children` processes that together open one connection per token to `host:port`
    /// and waits until each reports how many it holds. The connections stay open until `close()`.
    func open(
        host: String, port: Int, tokensFile: String, count: Int, children childCount: Int,
        firstToken: Int, concurrency: Int
    ) throws -> Outcome {
        let start = ProcessIO.nowNanos()
        let per = (count + childCount - 1) / childCount
        var from = firstToken
        var left = count
        for c in 0..<childCount where left > 0 {
            let n = min(per, left)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: ProcessIO.executablePath())
            p.arguments = [
                "chat-idle-child", "--host", host, "--port", String(port), "--tokens", tokensFile,
                "--from", String(from), "--count", String(n), "--source", "127.0.0.\(2 + c)",
                "--concurrency", String(concurrency),
            ]
            let input = Pipe()
            let output = Pipe()
            p.standardInput = input
            p.standardOutput = output
            p.standardError = FileHandle.standardError
            try p.run()
            children.append((p, input, output.fileHandleForReading))
            from += n
            left -= n
        }
        var outcome = Outcome()
        for child in children {
            // Lines: "progress OPENED FAILED", then "ready OPENED FAILED [first error]".
            var buffered = Data()
            reading: while true {
                let chunk = child.stdout.availableData
                if chunk.isEmpty {
                    throw ChatBenchError("an idle-connection child exited before reporting; see stderr above")
                }
                buffered.append(chunk)
                while let nl = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffered[buffered.startIndex..<nl], as: UTF8.self)
                    buffered.removeSubrange(buffered.startIndex...nl)
                    let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
                    if parts.first == "ready", parts.count >= 3 {
                        outcome.opened += Int(parts[1]) ?? 0
                        outcome.failed += Int(parts[2]) ?? 0
                        if outcome.firstError == nil, parts.count == 4 { outcome.firstError = parts[3] }
                        break reading
                    }
                }
            }
        }
        outcome.seconds = Double(ProcessIO.nowNanos() - start) / 1e9
        return outcome
    }

    /// Ends the children (closing their stdin); their connections close with them.
    func close() {
        for child in children { try? child.stdin.fileHandleForWriting.close() }
        for child in children {
            let deadline = ProcessIO.nowNanos() + 10_000_000_000
            while child.process.isRunning && ProcessIO.nowNanos() < deadline { usleep(20_000) }
            if child.process.isRunning { kill(child.process.processIdentifier, SIGKILL) }
        }
        children = []
    }
}

/// Hidden: one idle-connection child. Opens its share of connections, each counted once the
/// server's first frame (`hello`, which needs a good token) has arrived, reports, and then holds
/// them doing nothing but answering pings until its stdin closes.
struct ChatIdleChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-idle-child", abstract: "Internal: hold idle chat WebSocket connections until stdin closes.",
        shouldDisplay: false)

    @Option var host: String
    @Option var port: Int
    @Option(help: "File with one token per line.") var tokens: String
    @Option(help: "First line of the token file to use (0-based).") var from: Int
    @Option var count: Int
    @Option(help: "Local address to connect from.") var source: String?
    @Option var concurrency = 200

    func run() throws {
        _ = FileLimit.raiseSoftToHard()
        let all = try String(contentsOfFile: tokens, encoding: .utf8).split(separator: "\n")
        guard from + count <= all.count else {
            throw ChatBenchError("the token file has \(all.count) lines, need \(from + count)")
        }
        let mine = all[from..<(from + count)].map(String.init)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let host = self.host
        let port = self.port
        let source = self.source
        let concurrency = self.concurrency
        let result = try blockOn { () async -> (Int, Int, String?, [ChatSocket]) in
            var opened = 0
            var failed = 0
            var failedInARow = 0
            var firstError: String?
            var sockets: [ChatSocket] = []
            sockets.reserveCapacity(mine.count)
            await withTaskGroup(of: Result<ChatSocket, ChatBenchError>.self) { tasks in
                var next = 0
                func launch() {
                    let token = mine[next]
                    next += 1
                    tasks.addTask {
                        do {
                            let socket = try await ChatSocket.connect(
                                host: host, port: port, token: token, group: group, source: source)
                            let first = try await socket.firstText()
                            guard first.contains("\"hello\"") else {
                                socket.close()
                                return .failure(ChatBenchError("first frame was not hello: \(first.prefix(200))"))
                            }
                            return .success(socket)
                        } catch {
                            return .failure(ChatBenchError("\(error)"))
                        }
                    }
                }
                while next < min(concurrency, mine.count) { launch() }
                for await r in tasks {
                    switch r {
                    case .success(let s):
                        sockets.append(s)
                        opened += 1
                        failedInARow = 0
                    case .failure(let e):
                        failed += 1
                        failedInARow += 1
                        if firstError == nil { firstError = e.description }
                    }
                    if (opened + failed) % 2_000 == 0 {
                        FileHandle.standardOutput.write(Data("progress \(opened) \(failed)\n".utf8))
                    }
                    // Past the server's limit every attempt waits for its timeout; stop trying
                    // once 2 × concurrency attempts in a row failed (the rest count as failed).
                    if failedInARow >= 2 * concurrency, next < mine.count {
                        failed += mine.count - next
                        firstError = (firstError ?? "") + " (stopped after \(failedInARow) failures in a row)"
                        next = mine.count
                    }
                    if next < mine.count { launch() }
                }
            }
            return (opened, failed, firstError, sockets)
        }
        let error = result.2.map { " " + $0.replacingOccurrences(of: "\n", with: " ") } ?? ""
        FileHandle.standardOutput.write(Data("ready \(result.0) \(result.1)\(error)\n".utf8))
        // Hold until the parent closes our stdin (or dies).
        var byte: UInt8 = 0
        while read(0, &byte, 1) > 0 {}
        withExtendedLifetime(result.3) {}
        Glibc.exit(0)
    }
}

/// RLIMIT_NOFILE: this container allows 20,000 descriptors per process and refuses more.
enum FileLimit {
    static func current() -> (soft: UInt64, hard: UInt64) {
        var l = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        return (UInt64(l.rlim_cur), UInt64(l.rlim_max))
    }

    /// Raises the soft limit to the hard limit; returns the new soft limit.
    @discardableResult
    static func raiseSoftToHard() -> UInt64 {
        var l = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        l.rlim_cur = l.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        return current().soft
    }

    /// Tries to raise both limits to `wanted` (what 100,000 connections would need); returns
    /// the error text when the kernel refuses, nil when it worked (then restores the old limits).
    static func tryRaise(to wanted: UInt64) -> String? {
        var old = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &old)
        var l = rlimit(rlim_cur: rlim_t(wanted), rlim_max: rlim_t(wanted))
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &l) != 0 {
            let e = errno
            return "setrlimit(RLIMIT_NOFILE, \(wanted)) failed: \(String(cString: strerror(e))) (errno \(e))"
        }
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &old)
        return nil
    }
}
