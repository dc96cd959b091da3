import ConfabProcess
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A server process a test started (`confab node`, `confab chat serve`) through ConfabProcess's
/// launcher, the one `confab ring` and `confab up` use: stdout and stderr in `<logDir>/<tag>.log`,
/// waits on its output and its exit as conditions, SIGKILLed on deinit if still running, so a
/// failing test leaves nothing behind.
package final class TestServer: Sendable {
    package let process: ServerProcess
    package let tag: String
    package var logPath: String { process.logPath }
    /// Where its stderr goes (`logPath` unless started with `separateErrors`).
    package let errorLogPath: String

    /// Starts `binary arguments…`. Not in a new session: a Ctrl-C of the test run reaches it too.
    /// With `separateErrors`, stderr goes to `<logDir>/<tag>.err` (`errorLogPath`) instead.
    package init(binary: String, arguments: [String], logDir: String, tag: String, separateErrors: Bool = false) throws
    {
        self.tag = tag
        errorLogPath = separateErrors ? "\(logDir)/\(tag).err" : "\(logDir)/\(tag).log"
        process = try ServerProcess.start(
            .init(
                arguments: [binary] + arguments, logPath: "\(logDir)/\(tag).log",
                errorLogPath: separateErrors ? errorLogPath : nil,
                banner: "--- test: starting \(tag): \(arguments.joined(separator: " "))\n", newSession: false))
    }

    /// The port printed after `marker` ("listening on 127.0.0.1:"), once the line is complete.
    /// Blocks the calling thread: for synchronous tests.
    package func waitForPort(after marker: String, timeout: Duration = .seconds(30)) throws -> Int {
        let line = try process.waitForLine(containing: marker, timeout: timeout, what: tag)
        return try Self.port(in: line, after: marker, tag: tag)
    }

    /// The port printed after `marker`, waited for off the cooperative pool.
    package func port(after marker: String, timeout: Duration = .seconds(30)) async throws -> Int {
        let line = try await process.line(containing: marker, timeout: timeout, what: tag)
        return try Self.port(in: line, after: marker, tag: tag)
    }

    private static func port(in line: String, after marker: String, tag: String) throws -> Int {
        guard let range = line.range(of: marker), let port = Int(line[range.upperBound...].prefix(while: \.isNumber))
        else { throw ProcessTestError("\(tag) printed \"\(line)\" without a port after \"\(marker)\"") }
        return port
    }

    package var isRunning: Bool { process.isAlive }

    package func signal(_ signal: Int32) { process.send(signal) }

    /// Waits for it to exit and reaps it: its exit code, or -N when signal N ended it.
    package func waitForTermination(timeout: Duration = .seconds(20)) throws -> Int32 {
        guard let status = process.waitForTermination(timeout: timeout) else {
            throw ProcessTestError("\(tag) (pid \(process.pid)) did not exit within \(timeout)")
        }
        return status
    }

    /// `waitForTermination` off the cooperative pool.
    package func termination(timeout: Duration = .seconds(20)) async throws -> Int32 {
        let result: Result<Int32, any Error> = await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: Result { try self.waitForTermination(timeout: timeout) }) }.start()
        }
        return try result.get()
    }

    /// SIGKILL, and wait until it is gone.
    package func kill() {
        process.send(SIGKILL)
        process.waitForExit(timeout: .seconds(10))
    }

    /// The end of its log, for failure messages.
    package func logTail(_ characters: Int = 3000) -> String {
        let paths = errorLogPath == logPath ? [logPath] : [logPath, errorLogPath]
        let text = paths.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }.joined(separator: "\n")
        return String(text.suffix(characters))
    }

    deinit { if process.isAlive { kill() } }
}

/// A multi-process test's failure, said as is.
package struct ProcessTestError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
