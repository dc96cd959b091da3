import ConfabProcess
import Foundation
import Testing

/// ConfabProcess's launcher on small shell scripts: its waits end on the event (a line written, an
/// exit), report an exit before the line, and time out when nothing happens.
@Suite struct ServerProcessTests {
    /// `sh -c SCRIPT`; a script of one command ends in `; :` so the shell stays (and its
    /// command line keeps the script) instead of exec-ing the command.
    private func start(_ script: String, in dir: TempDirectory, newSession: Bool = false) throws -> ServerProcess {
        try ServerProcess.start(
            .init(
                arguments: ["/bin/sh", "-c", script], logPath: dir.file("server.log"),
                banner: "--- test banner: listening on nothing\n", newSession: newSession))
    }

    @Test func waitForLineReturnsTheLineOnceItIsCompleteAndIgnoresTheBanner() throws {
        let dir = TempDirectory("confab-server-process")
        // The marker first arrives without its newline; only the complete line counts.
        let process = try start(
            "sleep 0.2; printf 'node x listening on 127'; sleep 0.3; printf '.0.0.1:4242 (data)\\n'; sleep 30", in: dir)
        defer { ServerProcess.stop([process], grace: .seconds(1)) }
        let line = try process.waitForLine(containing: "listening on ", timeout: .seconds(20), what: "script")
        #expect(line == "node x listening on 127.0.0.1:4242 (data)")
        #expect(process.isAlive)
    }

    @Test func anExitBeforeTheLineIsReportedWithTheLogsEnd() throws {
        let dir = TempDirectory("confab-server-process")
        let process = try start("echo 'cannot bind: address in use' >&2; exit 3", in: dir)
        let started = ContinuousClock.now
        #expect {
            try process.waitForLine(containing: "listening on ", timeout: .seconds(20), what: "script")
        } throws: { error in
            guard let error = error as? RingCommandError else { return false }
            return error.code == .startFailed && error.message.contains("address in use")
        }
        // Ended by the exit, not by the 20 s deadline.
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func aSilentProcessTimesOut() throws {
        let dir = TempDirectory("confab-server-process")
        let process = try start("sleep 30", in: dir)
        defer { ServerProcess.stop([process], grace: .seconds(1)) }
        #expect {
            try process.waitForLine(containing: "listening on ", timeout: .milliseconds(300), what: "script")
        } throws: { error in
            (error as? RingCommandError)?.code == .timeout
        }
    }

    @Test func terminationGivesTheExitCodeOrTheSignal() throws {
        let dir = TempDirectory("confab-server-process")
        let exits = try start("exit 7", in: dir)
        #expect(exits.waitForTermination(timeout: .seconds(20)) == 7)
        let killed = try start("sleep 30", in: dir)
        killed.send(SIGKILL)
        #expect(killed.waitForTermination(timeout: .seconds(20)) == -SIGKILL)
        #expect(!killed.isAlive)
    }

    @Test func stopTermsThenKillsAndAnotherHandleSeesTheExit() throws {
        let dir = TempDirectory("confab-server-process")
        // Ignores SIGTERM: only SIGKILL after the grace period ends it.
        let stubborn = try start("trap '' TERM; echo stubborn; while true; do sleep 1; done", in: dir, newSession: true)
        let polite = try start("echo polite; sleep 30; :", in: dir, newSession: true)
        // Once they print, they have exec'd the shell: their command lines are theirs.
        _ = try stubborn.waitForLine(containing: "stubborn", timeout: .seconds(20), what: "stubborn")
        _ = try polite.waitForLine(containing: "polite", timeout: .seconds(20), what: "polite")
        // A handle made from the pid alone, as `confab ring stop` has from ring.json.
        let fromPid = ServerProcess(
            pid: polite.pid, logPath: polite.logPath, expectedArgument: "echo polite; sleep 30; :")
        #expect(fromPid.isAlive)
        let outcome = ServerProcess.stop([stubborn, polite], grace: .milliseconds(500))
        #expect(outcome.killed.map(\.pid) == [stubborn.pid])
        #expect(outcome.survivors.isEmpty)
        #expect(!fromPid.isAlive && !stubborn.isAlive)
    }

    @Test func aRecycledPidRunningSomethingElseIsNotOurs() throws {
        let dir = TempDirectory("confab-server-process")
        let process = try start("echo started; sleep 30; :", in: dir)
        defer { ServerProcess.stop([process], grace: .seconds(1)) }
        // Until the child has exec'd, its command line is still ours: wait for it to print.
        _ = try process.waitForLine(containing: "started", timeout: .seconds(20), what: "script")
        #expect(ServerProcess(pid: process.pid, logPath: "", expectedArgument: "echo started; sleep 30; :").isAlive)
        #expect(!ServerProcess(pid: process.pid, logPath: "", expectedArgument: "/data/node7").isAlive)
    }

    /// A server that has not exec'd yet still has its parent's command line; waiting for its line
    /// must not take that for an exit. (It did, under load, for every launcher that names an
    /// argument: `confab up`'s chat servers, `confab ring start`'s nodes.) Here the gap is made
    /// 0.3 s long: a wrapper shell sleeps before it execs the server.
    @Test func waitingForALineDoesNotMistakeANotYetExecdServerForAnExitedOne() throws {
        let dir = TempDirectory("confab-server-process")
        let process = try ServerProcess.start(
            .init(
                arguments: [
                    "/bin/sh", "-c", "sleep 0.3; exec /bin/sh -c 'echo up; sleep 30; :' only-the-server-has-this",
                ],
                logPath: dir.file("server.log"), newSession: false, expectedArgument: "only-the-server-has-this"))
        defer { ServerProcess.stop([process], grace: .seconds(1)) }
        #expect(!process.isAlive)  // not yet the server
        let line = try process.waitForLine(containing: "up", timeout: .seconds(20), what: "script")
        #expect(line == "up")
        #expect(process.isAlive)
    }
}
