import Foundation
import Histogram
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Receipts of one measured run: per message, when it was due to be sent (the open-loop
/// schedule), and per receipt at a counted device, latency = receipt − due time. Fed by the
/// sockets' event loops, read by the run when it ends.
final class ReceiptBook: @unchecked Sendable {
    let tag: String
    let messages: Int
    /// Devices that count: the 1:1 receivers in the latency runs, every member in fan-out.
    let counted: Set<Int>
    private let lock = NSLock()
    private var due: [UInt64]
    private var receipts: [UInt16]
    private var acked: [Bool]
    private var latency = Latency.histogram()
    private var ackLatency = Latency.histogram()
    private var delivered = 0
    private var duplicates = 0
    private var acks = 0
    private var errorCodes: [String: Int] = [:]
    private var lastReceipt: UInt64 = 0
    /// Receipts per 100 ms after `binStart` (the chart's time series).
    private var bins: [Int] = []
    var binStart: UInt64 = 0
    /// Receipts between `windowStart` and `windowEnd` (the steady part of the run).
    var windowStart: UInt64 = 0
    var windowEnd: UInt64 = .max
    private var inWindow = 0

    init(tag: String, messages: Int, counted: Set<Int>) {
        self.tag = tag
        self.messages = messages
        self.counted = counted
        due = Array(repeating: 0, count: messages)
        receipts = Array(repeating: 0, count: messages)
        acked = Array(repeating: false, count: messages)
    }

    func setDue(_ i: Int, _ t: UInt64) { lock.withLock { due[i] = t } }

    func receipt(device: Int, index: Int, at now: UInt64, expectedPerMessage: Int) {
        guard counted.contains(device), index >= 0, index < messages else { return }
        lock.withLock {
            let d = due[index]
            guard d != 0 else { return }
            receipts[index] &+= 1
            if Int(receipts[index]) > expectedPerMessage { duplicates += 1 }
            delivered += 1
            _ = latency.record(max(1, now &- d))
            lastReceipt = max(lastReceipt, now)
            if now >= windowStart && now < windowEnd { inWindow += 1 }
            if now >= binStart {
                let b = Int((now - binStart) / 100_000_000)
                if b < 100_000 {
                    if b >= bins.count { bins += Array(repeating: 0, count: b - bins.count + 1) }
                    bins[b] += 1
                }
            }
        }
    }

    func ack(index: Int, at now: UInt64) {
        guard index >= 0, index < messages else { return }
        lock.withLock {
            guard !acked[index], due[index] != 0 else { return }
            acked[index] = true
            acks += 1
            _ = ackLatency.record(max(1, now &- due[index]))
        }
    }

    func error(_ code: String) { lock.withLock { errorCodes[code, default: 0] += 1 } }

    /// Everything the run reports, read under the lock.
    struct Totals {
        var delivered: Int
        var duplicates: Int
        var acks: Int
        var errors: [String: Int]
        var unreceived: Int
        var inWindow: Int
        var lastReceipt: UInt64
        var latency: Histogram<UInt64>
        var ack: Histogram<UInt64>
        var bins: [Int]
    }

    var totals: Totals {
        lock.withLock {
            Totals(
                delivered: delivered, duplicates: duplicates, acks: acks, errors: errorCodes,
                unreceived: receipts.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }, inWindow: inWindow, lastReceipt: lastReceipt,
                latency: latency, ack: ackLatency, bins: bins)
        }
    }

    /// Receipts so far, and sends answered (ack or error).
    var progress: (received: Int, answered: Int) {
        lock.withLock { (delivered, acks + errorCodes.values.reduce(0, +)) }
    }
}

/// Routes every socket's frames to the run that is going on (the book whose tag the clientId
/// carries); frames of an earlier run are dropped.
final class EventRouter: @unchecked Sendable {
    private let lock = NSLock()
    private var book: ReceiptBook?
    private var expected = 1
    /// Probe hook: any `message` event with this clientId, with the device that got it.
    private var watch: (clientId: String, seen: Set<Int>)?

    func activate(_ book: ReceiptBook?, expectedPerMessage: Int) {
        lock.withLock {
            self.book = book
            expected = expectedPerMessage
        }
    }

    private var pongs = 0
    var pongCount: Int { lock.withLock { pongs } }

    func watch(clientId: String) { lock.withLock { watch = (clientId, []) } }
    func watched() -> Set<Int> { lock.withLock { watch?.seen ?? [] } }

    /// Called on a socket's event loop for each text frame it reads.
    func onText(device: Int, _ buffer: ByteBuffer, at now: UInt64) {
        guard let type = EventScan.string("type", in: buffer) else { return }
        switch type {
        case "message", "ack":
            guard let clientId = EventScan.string("clientId", in: buffer) else { return }
            let (book, expected): (ReceiptBook?, Int) = lock.withLock {
                if type == "message", let w = watch, w.clientId == clientId { watch!.seen.insert(device) }
                return (self.book, self.expected)
            }
            guard let book, let dash = clientId.firstIndex(of: "-"), clientId[..<dash] == book.tag,
                let index = Int(clientId[clientId.index(after: dash)...])
            else { return }
            if type == "message" {
                book.receipt(device: device, index: index, at: now, expectedPerMessage: expected)
            } else {
                book.ack(index: index, at: now)
            }
        case "error":
            let code = EventScan.string("code", in: buffer).map(String.init) ?? "?"
            lock.withLock { book }?.error(code)
            if lock.withLock({ book == nil }) {
                Progress.log("[chat] device \(device) got error \(code): \(String(buffer: buffer).prefix(300))")
            }
        case "pong":
            lock.withLock { pongs += 1 }
        default:
            break
        }
    }
}

/// The result of one open-loop run (latency or fan-out).
struct ChatRunResult: Sendable {
    var label: String
    var ratePerSecond: Double
    var messages: Int
    var seconds: Double
    var expectedPerMessage: Int
    var delivered: Int
    var unreceived: Int
    var duplicates: Int
    var acks: Int
    var errors: [String: Int]
    var latency: LatencySummary
    var ack: LatencySummary
    /// Receipts in the sending window, per second.
    var deliveriesPerSecond: Double
    /// All receipts over first due time → last receipt.
    var deliveriesPerSecondWithDrain: Double
    var drainSeconds: Double
    var sendLagMaxMs: Double
    var bins: [Int]
    /// CPU seconds each process group used during the run ("server_a", "server_b", "ring", "bench").
    var cpuSeconds: [String: Double] = [:]
    /// Ring reads and writes the chat servers' send paths made per message stored during the run
    /// (`confab_chat_send_ring_*_total` ÷ `confab_chat_messages_total`, summed over both servers;
    /// nil when /metrics could not be read). Batching makes them fall below 1 under load.
    var ringReadsPerSend: Double?
    var ringWritesPerSend: Double?
    /// The machine's stalls while the run lasted (`MachineStallProbe`).
    var stalls: MachineStallProbe.Summary?
}

/// Sends `messages` frames open-loop at `rate`: message i is due at start + i / rate and is
/// written to its socket then, whatever happened to earlier ones; the pacing thread nanosleeps to
/// the next due time (no spinning — on two cores that would take one from the servers) and a late
/// wakeup is charged to the messages it delays. Then waits for receipts to stop arriving.
struct OpenLoopSender {
    var rate: Double
    var messages: Int
    /// Longest wait after the last due time for receipts still in flight; the wait ends earlier
    /// when everything arrived or nothing new arrived for 2 s. Late messages are then counted
    /// with their (large) latency rather than as lost, and the next run starts on an idle system.
    var drainTimeout: Double = 60

    init(rate: Double, messages: Int, drainTimeout: Double) {
        self.rate = rate
        self.messages = messages
        self.drainTimeout = drainTimeout
    }

    func run(
        book: ReceiptBook, expectedPerMessage: Int, label: String, router: EventRouter,
        send: (Int) -> Void
    ) -> ChatRunResult {
        let interval = 1e9 / rate
        let start = ProcessIO.nowNanos() + 20_000_000
        book.binStart = start
        book.windowStart = start
        book.windowEnd = start + UInt64(Double(messages) * interval)
        router.activate(book, expectedPerMessage: expectedPerMessage)
        var lagMax: UInt64 = 0
        var i = 0
        while i < messages {
            let now = ProcessIO.nowNanos()
            while i < messages {
                let due = start + UInt64(Double(i) * interval)
                if due > now { break }
                lagMax = max(lagMax, now - due)
                book.setDue(i, due)
                send(i)
                i += 1
            }
            if i < messages {
                let next = start + UInt64(Double(i) * interval)
                let now2 = ProcessIO.nowNanos()
                if next > now2 {
                    let nap = next - now2
                    var ts = timespec(tv_sec: Int(nap / 1_000_000_000), tv_nsec: Int(nap % 1_000_000_000))
                    nanosleep(&ts, nil)
                }
            }
        }
        let lastDue = start + UInt64(Double(messages - 1) * interval)
        // Wait until everything arrived, or nothing new came for a while, or the timeout.
        let expected = messages * expectedPerMessage
        let deadline = lastDue + UInt64(drainTimeout * 1e9)
        var lastCount = -1
        var quietSince = ProcessIO.nowNanos()
        while ProcessIO.nowNanos() < deadline {
            let (c, answered) = book.progress
            if c >= expected && answered >= messages { break }
            if c != lastCount {
                lastCount = c
                quietSince = ProcessIO.nowNanos()
            } else if ProcessIO.nowNanos() - quietSince > 2_000_000_000, ProcessIO.nowNanos() > lastDue + 1_000_000_000
            {
                break
            }
            usleep(10_000)
        }
        router.activate(nil, expectedPerMessage: 1)
        let t = book.totals
        let window = Double(book.windowEnd - book.windowStart) / 1e9
        let span = t.lastReceipt > start ? Double(t.lastReceipt - start) / 1e9 : window
        return ChatRunResult(
            label: label, ratePerSecond: rate, messages: messages, seconds: window,
            expectedPerMessage: expectedPerMessage,
            delivered: t.delivered, unreceived: t.unreceived, duplicates: t.duplicates, acks: t.acks,
            errors: t.errors, latency: LatencySummary(t.latency), ack: LatencySummary(t.ack),
            deliveriesPerSecond: Double(t.inWindow) / window,
            deliveriesPerSecondWithDrain: Double(t.delivered) / span,
            drainSeconds: t.lastReceipt > lastDue ? Double(t.lastReceipt - lastDue) / 1e9 : 0,
            sendLagMaxMs: Double(lagMax) / 1e6, bins: t.bins)
    }
}

/// The JSON of a `send` frame (docs/chat_protocol.md); `text` must need no escaping.
enum SendFrame {
    static func json(chatId: String, clientId: String, text: String) -> String {
        #"{"type":"send","chatId":"\#(chatId)","clientId":"\#(clientId)","text":"\#(text)"}"#
    }
}
