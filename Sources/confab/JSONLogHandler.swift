import ArgumentParser
import Foundation
import Logging

/// A swift-log handler writing one JSON object per line to standard error (`--log-format
/// json`): `time` (ISO 8601, UTC, milliseconds), `level`, `label`, `message`, `metadata` (an
/// object of strings), plus `source`. swift-log ships no JSON handler; log shippers (Loki,
/// Elasticsearch, CloudWatch) read JSON lines without a parsing rule.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        let explicit = event.metadata
        let source = event.source
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit { merged.merge(explicit) { _, new in new } }
        let object: [String: Any] = [
            "time": Self.timestamp(Date()),
            "level": level.rawValue,
            "label": label,
            "message": message.description,
            "source": source,
            "metadata": merged.mapValues(Self.flatten),
        ]
        guard
            var data = try? JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return }
        data.append(0x0A)
        // One write(2) per line: lines from several threads never interleave.
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 {
                    if n < 0, errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }

    private static func flatten(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return a.map(flatten)
        case .dictionary(let d): return d.mapValues(flatten)
        }
    }

    private static func timestamp(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }
}

/// `--log-format`: how a long-running command writes its log to standard error.
enum LogFormat: String, CaseIterable, Sendable {
    case text, json

    /// Bootstraps swift-log once for the process with this format and `level`.
    func bootstrap(level: Logger.Level) {
        switch self {
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .json:
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        }
    }

    static func parse(_ text: String) throws -> LogFormat {
        guard let format = LogFormat(rawValue: text.lowercased()) else {
            throw ValidationError("unknown --log-format \(text) (text or json)")
        }
        return format
    }
}
