import ConfabWire
import Foundation
import Synchronization

/// Shows a running `confab repair`: on a terminal one status line rewritten in place (kept when a
/// table finishes); otherwise a line per table finished and per 10 % of the session; with
/// `--json` one object per progress frame (`"event": "progress"`). Called on the client
/// connection's event loop, one frame at a time; the lock only guards against a reordering.
final class RepairProgressPrinter: Sendable {
    enum Mode: Sendable {
        case terminal
        case lines
        case json
    }

    private struct State {
        var lastDecile = -1
        var lineOpen = false
    }

    private let mode: Mode
    private let state = Mutex(State())

    init(mode: Mode) { self.mode = mode }

    /// Whether standard output is a terminal (where a rewritten line makes sense).
    static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) != 0 }

    func show(_ p: RepairProgress) {
        state.withLock { s in
            switch mode {
            case .json:
                Self.write(Self.jsonLine(p) + "\n")
            case .terminal:
                Self.write("\r\u{1B}[2K" + Self.text(p))
                s.lineOpen = true
                if p.rangesDone == p.rangesTotal {
                    Self.write("\n")
                    s.lineOpen = false
                }
            case .lines:
                let decile = Int(p.percent / 10)
                if p.rangesDone == p.rangesTotal || decile > s.lastDecile {
                    s.lastDecile = decile
                    Self.write(Self.text(p) + "\n")
                }
            }
        }
    }

    /// Ends a rewritten line left open (a failure in the middle of a table).
    func finish() {
        state.withLock { s in
            if s.lineOpen { Self.write("\n") }
            s.lineOpen = false
        }
    }

    /// Through `print` (the buffer the rest of the command's output uses, so lines keep their
    /// order), flushed at once so a pipe sees progress as it happens.
    private static func write(_ s: String) {
        print(s, terminator: "")
        fflush(nil)  // every C stream: `stdout` itself is not concurrency-safe to name
    }

    /// `[ 42.5%] confab.messages (1/2): 20/48 ranges compared, 3 differing, 12 sub-ranges / 340 rows streamed`
    static func text(_ p: RepairProgress) -> String {
        let percent = String(format: "%5.1f%%", p.percent)
        let table =
            p.tableCount > 1 ? "\(p.keyspace).\(p.table) (\(p.tableIndex)/\(p.tableCount))" : "\(p.keyspace).\(p.table)"
        return
            "[\(percent)] \(table): \(p.rangesDone)/\(p.rangesTotal) ranges compared, \(p.rangesDiffering) differing, "
            + "\(p.subrangesStreamed) sub-ranges / \(p.rowsStreamed) rows streamed"
    }

    static func jsonLine(_ p: RepairProgress) -> String {
        let object: [String: Any] = [
            "event": "progress", "keyspace": p.keyspace, "table": p.table, "table_index": p.tableIndex,
            "table_count": p.tableCount, "ranges_done": p.rangesDone, "ranges_total": p.rangesTotal,
            "ranges_differing": p.rangesDiffering, "subranges_streamed": p.subrangesStreamed,
            "rows_streamed": Int(clamping: p.rowsStreamed), "overall_ranges_done": p.overallRangesDone,
            "overall_ranges_total": p.overallRangesTotal, "percent": (p.percent * 10).rounded() / 10,
            "elapsed_ms": Double(p.elapsedMicros) / 1000,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
