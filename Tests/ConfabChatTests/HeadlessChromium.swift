import Foundation

/// A headless Chromium process with its own throw-away profile, driven over the DevTools protocol.
///
/// Debian's `chromium` package provides the browser (`bash tools/setup.sh` installs it). The browser
/// picks a free DevTools port itself (`--remote-debugging-port=0`) and writes it, with the browser
/// target's WebSocket path, to `<user-data-dir>/DevToolsActivePort`.
final class HeadlessChromium: @unchecked Sendable {
    let process = Process()
    let userDataDir: String
    /// `ws://127.0.0.1:PORT/devtools/browser/UUID`
    let browserWebSocketURL: String
    let logPath: String

    /// The browser binary: `CONFAB_CHROMIUM` if set, else Debian's binary (the real one behind the
    /// `/usr/bin/chromium` wrapper script, so signals reach the browser itself).
    static func executablePath() -> String? {
        if let path = ProcessInfo.processInfo.environment["CONFAB_CHROMIUM"] {
            return FileManager.default.isExecutableFile(atPath: path) ? path : nil
        }
        let candidates = [
            "/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(executable: String, timeout: Duration = .seconds(30)) throws {
        userDataDir =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("confab-chromium-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: userDataDir, withIntermediateDirectories: true)
        logPath = "\(userDataDir).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--remote-debugging-port=0", "--user-data-dir=\(userDataDir)",
            // The DevTools client (HummingbirdWSClient) sends `Origin: ws://127.0.0.1`; Chromium
            // refuses DevTools WebSockets from origins it was not told to allow.
            "--remote-allow-origins=ws://127.0.0.1",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-sync", "--mute-audio",
            // Several tabs stay live at once: none of them may be throttled as a background tab.
            "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            "about:blank",
        ]
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        try process.run()

        let portFile = "\(userDataDir)/DevToolsActivePort"
        let deadline = ContinuousClock.now + timeout
        while true {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8) {
                let lines = text.split(separator: "\n").map(String.init)
                if lines.count >= 2, let port = Int(lines[0]) {
                    browserWebSocketURL = "ws://127.0.0.1:\(port)\(lines[1])"
                    return
                }
            }
            if !process.isRunning || ContinuousClock.now > deadline {
                let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                let running = process.isRunning
                Self.terminate(process)
                try? FileManager.default.removeItem(atPath: userDataDir)
                throw BrowserTestError(
                    "chromium did not write \(portFile) (\(running ? "timed out" : "exited")): \(output.suffix(2000))")
            }
            usleep(50_000)
        }
    }

    /// SIGTERM, then SIGKILL after 5 s; removes the profile directory.
    func stop() {
        Self.terminate(process)
        try? FileManager.default.removeItem(atPath: userDataDir)
        try? FileManager.default.removeItem(atPath: logPath)
    }

    deinit { stop() }

    private static func terminate(_ process: Process) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

struct BrowserTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
