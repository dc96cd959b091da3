import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One `confab chat serve` process started by the benchmark: its URL (from the "listening on
/// http://HOST:PORT" line it logs), its pid for /proc readings, and a stop that always happens.
final class ChatServerProcess {
    let serverId: String
    let logPath: String
    private let process: Process
    private(set) var url = ""

    var pid: Int32 { process.processIdentifier }

    /// Starts the server. `softFileLimit` lowers the soft RLIMIT_NOFILE the server starts with
    /// (through `sh -c 'ulimit -S -n N; exec …'`), so the benchmark can see whether the server
    /// raises it to the hard limit itself, as a server meant for 100,000 connections must.
    init(
        binary: String, nodes: String, serverId: String, secretFile: String, logPath: String,
        softFileLimit: Int?, extraArguments: [String] = []
    ) throws {
        self.serverId = serverId
        self.logPath = logPath
        let arguments =
            [
                "chat", "serve", "--host", "127.0.0.1", "--port", "0", "--nodes", nodes,
                "--server-id", serverId, "--secret-file", secretFile,
                // The bench signs up thousands of users from one address.
                "--login-rate", "100000", "--login-burst", "100000",
            ] + extraArguments
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logPath) else { throw ChatBenchError("cannot write \(logPath)") }
        let p = Process()
        if let softFileLimit {
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "ulimit -S -n \(softFileLimit) && exec \"$0\" \"$@\"", binary] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = arguments
        }
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        Progress.log("[chat] starting \(serverId): \(binary) \(arguments.joined(separator: " "))")
        try p.run()
        process = p
    }

    /// Waits for the "listening on http://…" line; throws with the log's end if the server exits
    /// or does not get there in time.
    func waitListening(timeout: Double = 30) throws {
        let deadline = ProcessIO.nowNanos() + UInt64(timeout * 1e9)
        while ProcessIO.nowNanos() < deadline {
            if let text = try? String(contentsOfFile: logPath, encoding: .utf8),
                let range = text.range(of: "listening on http://")
            {
                let rest = text[range.upperBound...]
                let address = rest.prefix { !$0.isWhitespace && $0 != "\"" && $0 != "," }
                url = "http://" + address
                Progress.log("[chat] \(serverId) is up at \(url) (pid \(pid))")
                return
            }
            guard process.isRunning else {
                throw ChatBenchError(
                    "chat server \(serverId) exited with \(process.terminationStatus) while starting; the end of \(logPath):\n\(tail())"
                )
            }
            usleep(50_000)
        }
        throw ChatBenchError(
            "chat server \(serverId) did not print \"listening on http://\" within \(Int(timeout)) s; the end of \(logPath):\n\(tail())"
        )
    }

    var isRunning: Bool { process.isRunning }

    /// SIGTERM, then SIGKILL after 10 s.
    func stop() {
        guard process.isRunning else { return }
        Progress.log("[chat] stopping \(serverId)")
        process.terminate()
        let deadline = ProcessIO.nowNanos() + 10_000_000_000
        while process.isRunning && ProcessIO.nowNanos() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Resident set size (VmRSS of /proc/PID/status), in bytes.
    func rssBytes() -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap {
                UInt64($0)
            }
            return kb.map { $0 * 1024 }
        }
        return nil
    }

    /// The "Max open files" soft and hard limits of /proc/PID/limits.
    func fileLimits() -> (soft: Int?, hard: Int?) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8) else { return (nil, nil) }
        for line in text.split(separator: "\n") where line.hasPrefix("Max open files") {
            let fields = line.dropFirst("Max open files".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2 else { break }
            return (Int(fields[0]), Int(fields[1]))
        }
        return (nil, nil)
    }

    /// Open file descriptors (entries of /proc/PID/fd).
    func openFiles() -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }

    func tail(lines: Int = 20) -> String {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// CPU time of processes from /proc/PID/stat (utime + stime), to show where a run's time went
/// on a 2-core machine that the ring, both chat servers and the bench share.
enum CPUTime {
    static func seconds(pid: Int32?) -> Double? {
        let path = pid.map { "/proc/\($0)/stat" } ?? "/proc/self/stat"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A failure of the chat benchmark, printed as is.
struct ChatBenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
