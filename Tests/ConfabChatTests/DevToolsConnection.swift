import Foundation
import HummingbirdWSClient
import Logging

/// One WebSocket to Chromium's browser target, speaking the Chrome DevTools Protocol: JSON commands
/// `{id, method, params, sessionId?}` answered by `{id, result}` or `{id, error}`, and events
/// `{method, params, sessionId?}`. Pages are reached through flattened sessions
/// (`Target.attachToTarget` with `flatten: true`), so one socket drives every tab.
actor DevToolsConnection {
    private var nextId = 1
    private var waiting: [Int: CheckedContinuation<Data, any Error>] = [:]
    private var closedError: BrowserTestError?
    private let outbound: AsyncStream<String>.Continuation
    private var task: Task<Void, Never>?
    /// Page errors and console output, per session, for failure messages.
    private var logs: [String: [String]] = [:]

    private init(outbound: AsyncStream<String>.Continuation) {
        self.outbound = outbound
    }

    static func connect(_ url: String) async -> DevToolsConnection {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let connection = DevToolsConnection(outbound: continuation)
        var logger = Logger(label: "test.cdp")
        logger.logLevel = .warning
        let task = Task {
            do {
                try await WebSocketClient.connect(
                    url: url, configuration: .init(maxFrameSize: 64 << 20), logger: logger
                ) {
                    inbound, writer, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await text in stream { try await writer.write(.text(text)) }
                        }
                        for try await message in inbound.messages(maxSize: 64 << 20) {
                            if case .text(let text) = message { await connection.received(text) }
                        }
                        group.cancelAll()
                    }
                }
                await connection.closed(BrowserTestError("the DevTools WebSocket closed"))
            } catch {
                await connection.closed(BrowserTestError("the DevTools WebSocket failed: \(error)"))
            }
        }
        await connection.setTask(task)
        return connection
    }

    private func setTask(_ task: Task<Void, Never>) { self.task = task }

    /// Sends one command and returns its `result` object as JSON.
    func send(
        _ method: String, params: Data = Data("{}".utf8), sessionId: String? = nil,
        timeout: Duration = .seconds(20)
    ) async throws -> Data {
        if let closedError { throw closedError }
        let id = nextId
        nextId += 1
        var text = "{\"id\":\(id),\"method\":\"\(method)\",\"params\":\(String(decoding: params, as: UTF8.self))"
        if let sessionId { text += ",\"sessionId\":\"\(sessionId)\"" }
        text += "}"
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.fail(id, BrowserTestError("DevTools command \(method) got no answer within \(timeout)"))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            waiting[id] = continuation
            outbound.yield(text)
        }
    }

    func log(of sessionId: String) -> [String] { logs[sessionId] ?? [] }

    func close() {
        outbound.finish()
        task?.cancel()
        closed(BrowserTestError("the DevTools connection was closed by the test"))
    }

    private func fail(_ id: Int, _ error: BrowserTestError) {
        waiting.removeValue(forKey: id)?.resume(throwing: error)
    }

    private func closed(_ error: BrowserTestError) {
        if closedError == nil { closedError = error }
        let all = waiting
        waiting.removeAll()
        for continuation in all.values { continuation.resume(throwing: error) }
    }

    private func received(_ text: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return }
        if let id = object["id"] as? Int {
            guard let continuation = waiting.removeValue(forKey: id) else { return }
            if let error = object["error"] as? [String: Any] {
                continuation.resume(throwing: BrowserTestError("DevTools error: \(error["message"] ?? error)"))
            } else {
                let result = object["result"] ?? [String: Any]()
                continuation.resume(returning: (try? JSONSerialization.data(withJSONObject: result)) ?? Data("{}".utf8))
            }
            return
        }
        guard let method = object["method"] as? String, let session = object["sessionId"] as? String else { return }
        let params = object["params"] as? [String: Any] ?? [:]
        switch method {
        case "Runtime.exceptionThrown":
            let details = params["exceptionDetails"] as? [String: Any] ?? [:]
            let exception = details["exception"] as? [String: Any] ?? [:]
            logs[session, default: []].append("exception: \(exception["description"] ?? details["text"] ?? "?")")
        case "Runtime.consoleAPICalled":
            let args = (params["args"] as? [[String: Any]] ?? []).map { "\($0["value"] ?? $0["description"] ?? "")" }
            logs[session, default: []].append("console.\(params["type"] ?? "log"): \(args.joined(separator: " "))")
        case "Log.entryAdded":
            let entry = params["entry"] as? [String: Any] ?? [:]
            logs[session, default: []].append(
                "\(entry["level"] ?? "log"): \(entry["text"] ?? "") \(entry["url"] ?? "")")
        default:
            break
        }
    }
}
