import ConfabProcess
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One `confab chat serve` process started by the benchmark through ConfabProcess's launcher
/// (the one `confab up` and the tests use): its URL (from the "listening on http://HOST:PORT"
/// line it logs), its pid for /proc readings, and a stop that always happens.
final class ChatServerProcess {
    let serverId: String
    let logPath: String
    private let process: ServerProcess
    private(set) var url = ""

    var pid: Int32 { process.pid }

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
        let command =
            softFileLimit.map { ["/bin/sh", "-c", "ulimit -S -n \($0) && exec \"$0\" \"$@\"", binary] } ?? [binary]
        Progress.log("[chat] starting \(serverId): \(binary) \(arguments.joined(separator: " "))")
        process = try ServerProcess.start(
            .init(arguments: command + arguments, logPath: logPath, newSession: false, expectedArgument: serverId))
    }

    /// Waits for the "listening on http://…" line; throws with the log's end if the server exits
    /// or does not get there in time.
    func waitListening(timeout: Double = 30) throws {
        let line = try process.waitForLine(
            containing: "listening on http://", timeout: .milliseconds(Int(timeout * 1000)),
            what: "chat server \(serverId)")
        if let range = line.range(of: "listening on http://") {
            url = "http://" + line[range.upperBound...].prefix { !$0.isWhitespace && $0 != "\"" && $0 != "," }
        }
        Progress.log("[chat] \(serverId) is up at \(url) (pid \(pid))")
    }

    var isRunning: Bool { process.isAlive }

    /// SIGTERM, then SIGKILL after 10 s.
    func stop() {
        guard process.isAlive else { return }
        Progress.log("[chat] stopping \(serverId)")
        ServerProcess.stop([process], grace: .seconds(10))
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
