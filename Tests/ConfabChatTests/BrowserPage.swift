import Foundation

/// One browser tab, driven through a flattened DevTools session: the test types, clicks and reads
/// the DOM with `Runtime.evaluate`, the way a user's actions reach the page's own handlers.
struct BrowserPage: Sendable {
    let connection: DevToolsConnection
    let sessionId: String
    let targetId: String
    let name: String

    /// Opens a new tab (its own sessionStorage, so its own signed-in user) at `url`; `beforeLoad`
    /// runs in the page before any of its own scripts.
    static func open(
        _ url: String, name: String, on connection: DevToolsConnection,
        beforeLoad: String? = nil
    ) async throws -> BrowserPage {
        let created = try await connection.send("Target.createTarget", params: json(["url": "about:blank"]))
        let targetId = try string(created, "targetId")
        let attached = try await connection.send(
            "Target.attachToTarget",
            params: json(["targetId": targetId, "flatten": true]))
        let page = BrowserPage(
            connection: connection, sessionId: try string(attached, "sessionId"),
            targetId: targetId, name: name)
        _ = try await page.command("Runtime.enable")
        _ = try await page.command("Log.enable")
        _ = try await page.command("Page.enable")
        if let beforeLoad {
            _ = try await page.command("Page.addScriptToEvaluateOnNewDocument", ["source": beforeLoad])
        }
        _ = try await page.command("Page.navigate", ["url": url])
        try await page.waitFor("the page has loaded", "document.readyState === 'complete' && !!window.confab")
        return page
    }

    func command(_ method: String, _ params: [String: Any] = [:]) async throws -> Data {
        try await connection.send(method, params: Self.json(params), sessionId: sessionId)
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its JSON value.
    func evaluate(_ expression: String) async throws -> Any? {
        let data = try await command(
            "Runtime.evaluate",
            [
                "expression": expression, "returnByValue": true,
                "awaitPromise": true,
            ])
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        if let details = object["exceptionDetails"] as? [String: Any] {
            let exception = details["exception"] as? [String: Any] ?? [:]
            throw BrowserTestError(
                "\(name): script threw \(exception["description"] ?? details["text"] ?? "?") in: \(expression)")
        }
        let result = object["result"] as? [String: Any] ?? [:]
        return result["value"]
    }

    func string(_ expression: String) async throws -> String {
        let value = try await evaluate(expression)
        return value as? String ?? (value.map { "\($0)" } ?? "")
    }

    func int(_ expression: String) async throws -> Int {
        try await evaluate(expression) as? Int ?? -1
    }

    /// Polls `condition` (a JavaScript expression, or a promise of one) every 50 ms until it is true.
    func waitFor(_ what: String, _ condition: String, timeout: Duration = .seconds(15)) async throws {
        let deadline = ContinuousClock.now + timeout
        var lastError = ""
        while ContinuousClock.now < deadline {
            do {
                if try await evaluate("(async () => Boolean(await (\(condition))))()") as? Bool == true { return }
            } catch {
                lastError = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BrowserTestError(
            "\(name): timed out after \(timeout) waiting until \(what)\n\(try await diagnostics())\(lastError)")
    }

    /// What a failure message needs: the visible text, the connection state and the page's log.
    func diagnostics() async throws -> String {
        let text = (try? await string("document.body ? document.body.innerText.slice(0, 1500) : ''")) ?? "?"
        let status = (try? await string("(document.getElementById('connection-status') || {}).textContent")) ?? "?"
        let log = await connection.log(of: sessionId).suffix(20).joined(separator: "\n  ")
        return "page text:\n\(text)\nconnection: \(status)\npage log:\n  \(log)\n"
    }

    /// Sets an input's value as typing would (an `input` event follows).
    func fill(_ selector: String, _ value: String) async throws {
        _ = try await evaluate(
            """
            (() => { const e = document.querySelector(\(Self.literal(selector)));
              if (!e) throw new Error('no element ' + \(Self.literal(selector)));
              e.value = \(Self.literal(value)); e.dispatchEvent(new Event('input', {bubbles: true})); return true; })()
            """)
    }

    func click(_ selector: String) async throws {
        _ = try await evaluate(
            """
            (() => { const e = document.querySelector(\(Self.literal(selector)));
              if (!e) throw new Error('no element ' + \(Self.literal(selector))); e.click(); return true; })()
            """)
    }

    func close() async {
        _ = try? await connection.send("Target.closeTarget", params: Self.json(["targetId": targetId]))
    }

    /// A JavaScript string literal for `text` (JSON string syntax is valid JavaScript).
    static func literal(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text])) ?? Data("[\"\"]".utf8)
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }

    static func json(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
    }

    static func string(_ data: Data, _ key: String) throws -> String {
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let value = object[key] as? String
        else {
            throw BrowserTestError("DevTools answer has no \(key): \(String(decoding: data, as: UTF8.self))")
        }
        return value
    }
}
