import CProcessWatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One `confab` server process — a ring node or a chat server — started by `confab ring`,
/// `confab up`, a test or a benchmark, or found again by the pid a ring directory recorded. The one
/// way Confab starts and watches its long-running processes.
///
/// Why neither Foundation's `Process` nor swift-subprocess: nodes outlive the command that starts
/// them (`confab ring start` returns, the nodes keep running), and later commands stop and watch
/// processes they did not start (the pids in `ring.json`). swift-subprocess ties a child's life to a
/// closure and reaps it on its own monitor thread; `Process` only knows its own children. So the
/// process is spawned with `posix_spawn` and watched through Linux's pidfd (any process, not only
/// children) and inotify (its log), and every wait is a `poll(2)` on those descriptors with a
/// deadline — a condition, not a sleep loop. Commands that run to completion (the CLI tests'
/// `confab ring status`) are not servers and do not use this.
public struct ServerProcess: Sendable, Hashable {
    /// How to start one.
    public struct Launch: Sendable {
        /// Executable first.
        public var arguments: [String]
        /// Its stdout (and stderr, unless `errorLogPath` is given), appended.
        public var logPath: String
        /// Its stderr, when it should not share the log (a test reading the log lines alone).
        public var errorLogPath: String?
        /// Written to the log first (what started it, when), so a log of many runs reads clearly.
        public var banner: String?
        /// A new session (`POSIX_SPAWN_SETSID`, as `setsid(1)`): no controlling terminal, no
        /// terminal SIGINT or SIGHUP, so the process outlives the command that started it. `confab
        /// ring` and `confab up` want this; tests and benchmarks leave it off, so a Ctrl-C of the
        /// test run reaches their servers too.
        public var newSession: Bool
        /// An argument its command line holds (a data directory, "chat"), so a recycled pid is
        /// not mistaken for it.
        public var expectedArgument: String?

        public init(
            arguments: [String], logPath: String, errorLogPath: String? = nil, banner: String? = nil,
            newSession: Bool = true, expectedArgument: String? = nil
        ) {
            self.arguments = arguments
            self.logPath = logPath
            self.errorLogPath = errorLogPath
            self.banner = banner
            self.newSession = newSession
            self.expectedArgument = expectedArgument
        }
    }

    public let pid: pid_t
    public let logPath: String
    /// Where this run's output starts in the log (after the banner): earlier runs' lines before it
    /// are not this run's "listening" line.
    public let outputStart: Int
    public let expectedArgument: String?

    /// A process started elsewhere (a pid recorded in a ring directory).
    public init(pid: pid_t, logPath: String, outputStart: Int = 0, expectedArgument: String?) {
        self.pid = pid
        self.logPath = logPath
        self.outputStart = outputStart
        self.expectedArgument = expectedArgument
    }

    // MARK: Starting

    /// Spawns the process with stdin from /dev/null and stdout and stderr appended to the log. No
    /// other descriptor is inherited (every descriptor of ours is made close-on-exec first,
    /// including ones we inherited, such as a parent's stray pipe ends), so a caller reading our
    /// output through a pipe sees EOF when we exit, not when the servers do.
    public static func start(_ launch: Launch) throws(RingCommandError) -> ServerProcess {
        let logFD = open(launch.logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard logFD >= 0 else {
            throw RingCommandError(.io, "cannot open \(launch.logPath): \(String(cString: strerror(errno)))")
        }
        defer { close(logFD) }
        var errorFD = logFD
        if let errorLogPath = launch.errorLogPath {
            errorFD = open(errorLogPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard errorFD >= 0 else {
                throw RingCommandError(.io, "cannot open \(errorLogPath): \(String(cString: strerror(errno)))")
            }
        }
        defer { if errorFD != logFD { close(errorFD) } }
        if let banner = launch.banner {
            _ = banner.utf8CString.withUnsafeBufferPointer { write(logFD, $0.baseAddress, $0.count - 1) }
        }
        let outputStart = Int(lseek(logFD, 0, SEEK_END))

        #if os(Linux)
            var actions = posix_spawn_file_actions_t()
            var attr = posix_spawnattr_t()
            let setsidFlag = Int32(0x80)  // POSIX_SPAWN_SETSID (glibc ≥ 2.26)
        #else
            var actions: posix_spawn_file_actions_t? = nil
            var attr: posix_spawnattr_t? = nil
            let setsidFlag = Int32(POSIX_SPAWN_SETSID)
        #endif
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attr)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attr)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, errorFD, 2)

        // Default dispositions and an empty mask: the server installs its own SIGTERM/SIGINT
        // handling, whatever we (or the shell that ran us) ignored or blocked.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &noSignals)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        if launch.newSession { flags |= setsidFlag }
        posix_spawnattr_setflags(&attr, Int16(flags))

        closeOnExecAll()
        let argv: [UnsafeMutablePointer<CChar>?] = launch.arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, launch.arguments[0], &actions, &attr, argv, environ)
        guard rc == 0 else {
            throw RingCommandError(.startFailed, "cannot run \(launch.arguments[0]): \(String(cString: strerror(rc)))")
        }
        return ServerProcess(
            pid: pid, logPath: launch.logPath, outputStart: outputStart, expectedArgument: launch.expectedArgument)
    }

    /// Sets FD_CLOEXEC on every descriptor above stderr, so a spawned server inherits none of them.
    private static func closeOnExecAll() {
        var fds: [Int32] = []
        #if os(Linux)
            if let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
                fds = names.compactMap(Int32.init)
            }
        #endif
        if fds.isEmpty { fds = Array(3..<Int32(min(4096, max(256, sysconf(Int32(_SC_OPEN_MAX)))))) }
        for fd in fds where fd > 2 {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    // MARK: Watching

    /// Whether it is still running (and still the process we mean: a recycled pid running another
    /// program, or a server of another directory, does not count).
    public var isAlive: Bool {
        guard isRunning else { return false }
        #if os(Linux)
            if let expectedArgument,
                let raw = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            {
                let args = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                return args.contains(expectedArgument)
            }
        #endif
        return true
    }

    /// Whether the pid still runs (not exited, not a zombie), whatever its command line: for a
    /// process we just started, which may not have exec'd yet.
    public var isRunning: Bool {
        guard pid > 0 else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return false }
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        return !Self.hasExited(pid)
    }

    /// Whether `pid` is a zombie or dead (`/proc/PID/stat` state Z or X): exited, not yet reaped.
    static func hasExited(_ pid: pid_t) -> Bool {
        #if os(Linux)
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let state = stat[stat.index(after: close)...].split(separator: " ").first
            return state == "Z" || state == "X"
        #else
            return false
        #endif
    }

    /// Sends `signal`; false when the process is already gone.
    @discardableResult
    public func send(_ signal: Int32) -> Bool {
        pid > 0 && kill(pid, signal) == 0
    }

    /// Waits until it exits or `timeout` passes; true when it is gone.
    @discardableResult
    public func waitForExit(timeout: Duration) -> Bool {
        Self.waitForExit([self], timeout: timeout).isEmpty
    }

    /// For a child of ours: waits until it exits and reaps it. Returns its exit code, or -N when
    /// signal N ended it; nil on timeout, or when it is not our child (or was already reaped).
    public func waitForTermination(timeout: Duration) -> Int32? {
        // The pidfd of an exited child is readable before the child is reaped, so the status is
        // still there for waitpid below (`isAlive` would reap it and lose it).
        _ = ExitWatch([self], reaping: false).wait(until: ContinuousClock.now.advanced(by: timeout))
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : -signal
    }

    /// Waits until none of `processes` runs or `timeout` passes; returns those still running.
    public static func waitForExit(_ processes: [ServerProcess], timeout: Duration) -> [ServerProcess] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var alive = processes.filter(\.isAlive)
        while !alive.isEmpty {
            let exited = ExitWatch(alive).wait(until: deadline)
            if exited.isEmpty { break }
            alive = alive.filter { !exited.contains($0) && $0.isAlive }
        }
        return alive
    }

    /// Waits until one of `processes` exits, `wake` becomes readable (a stop signal's pipe) or
    /// `deadline` passes; returns the processes that exited (empty for a wake-up or the deadline).
    public static func waitForAnyExit(
        _ processes: [ServerProcess], orReadable wake: Int32? = nil, until deadline: ContinuousClock.Instant? = nil
    ) -> [ServerProcess] {
        if let gone = processes.first(where: { !$0.isAlive }) { return [gone] }
        let exited = ExitWatch(processes).wait(until: deadline, wake: wake)
        return exited.filter { !$0.isAlive }
    }

    /// SIGTERM to each, SIGKILL to those still running after `grace`; returns those that needed
    /// SIGKILL and those that survived even that (5 s more).
    @discardableResult
    public static func stop(_ processes: [ServerProcess], grace: Duration) -> (
        killed: [ServerProcess], survivors: [ServerProcess]
    ) {
        let running = processes.filter(\.isAlive)
        for p in running { p.send(SIGTERM) }
        let stubborn = waitForExit(running, timeout: grace)
        for p in stubborn { p.send(SIGKILL) }
        return (stubborn, waitForExit(stubborn, timeout: .seconds(5)))
    }

    // MARK: The log

    /// Waits until this run's output holds a complete line containing `marker` and returns that
    /// line. Throws `.startFailed` (with the end of the log) when the process exits first and
    /// `.timeout` when `timeout` passes; `what` names the process in those messages.
    public func waitForLine(containing marker: String, timeout: Duration, what: String) throws(RingCommandError)
        -> String
    {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let watch = LogWatch(path: logPath, from: outputStart)
        let exit = ExitWatch([self])
        while true {
            // The watch is armed before each read, so a write after the read wakes the poll.
            if let line = watch.readLines().first(where: { $0.contains(marker) }) { return line }
            // Not `isAlive`: until the child has exec'd, its command line is still ours, so the
            // expected-argument check would call a starting server dead.
            if !isRunning {
                // It may have written the line just before exiting.
                if let line = watch.readLines().first(where: { $0.contains(marker) }) { return line }
                throw RingCommandError(
                    .startFailed,
                    """
                    \(what) (pid \(pid)) exited before it printed "\(marker)"; the end of \(logPath):
                    \(Self.tail(of: logPath))
                    """)
            }
            guard ContinuousClock.now < deadline else {
                throw RingCommandError(
                    .timeout,
                    """
                    \(what) (pid \(pid)) did not print "\(marker)" within \(timeout); the end of \(logPath):
                    \(Self.tail(of: logPath))
                    """)
            }
            // Without inotify (out of watches), look again every 50 ms: the one poll left here.
            let until = watch.descriptor == nil ? min(deadline, ContinuousClock.now + .milliseconds(50)) : deadline
            _ = exit.wait(until: until, wake: watch.descriptor)
        }
    }

    /// `waitForLine` off the cooperative pool (the wait blocks a thread of its own), for async
    /// callers such as tests, whose pool has only as many threads as the machine has cores.
    public func line(containing marker: String, timeout: Duration, what: String) async throws(RingCommandError)
        -> String
    {
        let result: Result<String, RingCommandError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    returning: Result { () throws(RingCommandError) in
                        try self.waitForLine(containing: marker, timeout: timeout, what: what)
                    })
            }
            thread.name = "confab-wait-\(pid)"
            thread.start()
        }
        return try result.get()
    }

    /// The port in the first line containing `marker` ("listening on 127.0.0.1:" → the digits
    /// after it).
    public func port(after marker: String, timeout: Duration, what: String) async throws(RingCommandError) -> Int {
        let line = try await line(containing: marker, timeout: timeout, what: what)
        guard let range = line.range(of: marker), let port = Int(line[range.upperBound...].prefix(while: \.isNumber))
        else {
            throw RingCommandError(.startFailed, "\(what) printed \"\(line)\" without a port after \"\(marker)\"")
        }
        return port
    }

    /// Appends a line to a server's log (what `command` did to it: stopped, killed), best effort.
    public static func note(_ line: String, inLog path: String, by command: String = "confab ring") {
        guard let handle = FileHandle(forWritingAtPath: path) else { return }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        try? handle.write(contentsOf: Data("--- \(command): \(line) at \(Date())\n".utf8))
    }

    /// The last `lines` lines of a log file, indented, for error messages.
    public static func tail(of path: String, lines: Int = 8) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        let last = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines + 1)
        return last.filter { !$0.isEmpty }.map { "    \($0)" }.joined(separator: "\n")
    }

    /// This `confab` executable, absolute (servers run the same binary as the CLI).
    public static func confabExecutable() -> String {
        #if os(Linux)
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
                target.hasPrefix("/")
            {
                return target
            }
        #endif
        if let path = Bundle.main.executablePath { return URL(fileURLWithPath: path).standardizedFileURL.path }
        let arg0 = CommandLine.arguments[0]
        if arg0.contains("/") {
            return URL(
                fileURLWithPath: arg0, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            )
            .standardizedFileURL.path
        }
        return arg0
    }
}
