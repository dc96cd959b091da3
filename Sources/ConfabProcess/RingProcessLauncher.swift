import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Starts `confab node` processes detached from the terminal and checks on them by pid.
///
/// A node is spawned in a new session (`POSIX_SPAWN_SETSID`, as `setsid(1)` does), so it has no
/// controlling terminal, gets no SIGHUP or terminal SIGINT, and outlives the CLI. Its stdin is
/// /dev/null and its stdout and stderr append to its log file; no other descriptor is inherited
/// (every descriptor of the CLI is made close-on-exec first, including ones it inherited, such as a
/// parent's stray pipe ends), so a caller reading the CLI's output through a pipe sees EOF when the
/// CLI exits, not when the nodes do.
package enum RingProcessLauncher {
    /// This `confab` executable, absolute (nodes run the same binary as the CLI).
    package static func confabExecutable() -> String {
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

    /// Spawns `arguments` (executable first) in a new session with stdout and stderr appended to
    /// `logPath`, after writing `banner` there. Returns the pid.
    package static func spawnDetached(_ arguments: [String], logPath: String, banner: String) throws(RingCommandError)
        -> pid_t
    {
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard logFD >= 0 else {
            throw RingCommandError(.io, "cannot open \(logPath): \(String(cString: strerror(errno)))")
        }
        defer { close(logFD) }
        _ = banner.utf8CString.withUnsafeBufferPointer { write(logFD, $0.baseAddress, $0.count - 1) }

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
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)

        // Default dispositions and an empty mask: the node installs its own SIGTERM/SIGINT
        // handling, whatever the CLI (or the shell that ran it) ignored or blocked.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &noSignals)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(
            &attr, Int16(setsidFlag | Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)))

        closeOnExecAll()
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attr, argv, environ)
        guard rc == 0 else {
            throw RingCommandError(.startFailed, "cannot run \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Sets FD_CLOEXEC on every descriptor above stderr, so a spawned node inherits none of them.
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

    /// Whether `node`'s recorded pid is still a running `confab node` for its data directory. A
    /// recycled pid (another program, or a node of another ring) does not count.
    package static func isAlive(_ node: RingFile.Node) -> Bool {
        guard let pid = node.pid, pid > 0 else { return false }
        return isAlive(pid: pid, expectedArgument: node.dataDir)
    }

    package static func isAlive(pid: pid_t, expectedArgument: String?) -> Bool {
        // Our own child that exited is a zombie until reaped: reap it, and it is gone.
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return false }
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        #if os(Linux)
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            {
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                if fields.first == "Z" || fields.first == "X" { return false }
            }
            if let expectedArgument,
                let raw = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            {
                let args = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                return args.contains(expectedArgument)
            }
        #endif
        return true
    }

    /// Sends `signal`; false when the process is already gone.
    @discardableResult
    package static func send(_ signal: Int32, to pid: pid_t) -> Bool {
        kill(pid, signal) == 0
    }

    /// Polls until none of `nodes` is alive or `timeout` passes; returns those still alive.
    package static func waitForExit(
        _ nodes: [RingFile.Node], timeout: Duration,
        clock: ContinuousClock = ContinuousClock()
    ) -> [RingFile.Node] {
        let deadline = clock.now.advanced(by: timeout)
        var alive = nodes.filter { isAlive($0) }
        while !alive.isEmpty, clock.now < deadline {
            usleep(50_000)
            alive = alive.filter { isAlive($0) }
        }
        return alive
    }

    /// A TCP port on `host` that nobody listens on right now (bind to port 0, read it, close).
    /// Another process may take it before the node binds it; the node then fails with a clear
    /// "address in use" in its log.
    package static func freePort(host: String = "127.0.0.1") throws(RingCommandError) -> Int {
        try probe(host: host, port: 0)
    }

    /// Whether `port` on `host` can be bound now.
    package static func isPortFree(_ port: Int, host: String = "127.0.0.1") -> Bool {
        (try? probe(host: host, port: port)) != nil
    }

    private static func probe(host: String, port: Int) throws(RingCommandError) -> Int {
        #if os(Linux)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw RingCommandError(.io, "socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(host)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            throw RingCommandError(.io, "cannot bind \(host):\(port): \(String(cString: strerror(errno)))")
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Appends a line to a node's log (what the CLI did to it: stopped, killed), best effort.
    package static func note(_ line: String, inLog path: String) {
        guard let handle = FileHandle(forWritingAtPath: path) else { return }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        try? handle.write(contentsOf: Data("--- confab ring: \(line) at \(Date())\n".utf8))
    }

    /// The last `lines` lines of a log file, indented, for error messages.
    package static func tail(of path: String, lines: Int = 8) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        let last = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines + 1)
        return last.filter { !$0.isEmpty }.map { "    \($0)" }.joined(separator: "\n")
    }
}
