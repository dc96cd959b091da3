import NIOCore

/// Open loop as `OpenLoopAsync` (request i due at start + i / rate, latency = completion −
/// *intended* start, so no coordinated omission), but paced by a timer on an event loop and issued
/// through the client's callback API (`ConfabClient.submitWrite`): no task and no pacing thread per
/// request.
///
/// Why: on this 2-core machine the generator shares the cores with the ring it measures. With a
/// task per request, the generator spent about 130 µs of CPU per request at half the RF-3 peak
/// (a task start, wake-ups onto the cooperative pool and back, a hop onto the connection's loop),
/// about a quarter of the machine, which the nodes then waited for. A late timer is charged to the
/// requests it delays, as before.
struct OpenLoopOnEventLoop {
    var ratePerSecond: Double
    var requests: Int
    var timelinePath: String? = nil

    func run<T: Sendable>(on loop: any EventLoop, _ operation: @escaping @Sendable (Int) -> EventLoopFuture<T>)
        -> OpenLoopResult
    {
        let recorder = OpenLoopAsync.Recorder(issuing: true)
        let interval = 1e9 / ratePerSecond
        let start = ProcessIO.nowNanos() + 1_000_000
        let requests = self.requests
        let pacer = Pacer(
            loop: loop, recorder: recorder, start: start, interval: interval, requests: requests, operation: operation)
        loop.execute { pacer.tick() }
        return OpenLoopAsync.result(of: recorder, start: start, requests: requests, timelinePath: timelinePath)
    }

    /// Lives on `loop`: each tick starts every request that is due and sleeps until the next.
    private final class Pacer<T: Sendable>: @unchecked Sendable {
        let loop: any EventLoop
        let recorder: OpenLoopAsync.Recorder
        let start: UInt64
        let interval: Double
        let requests: Int
        let operation: @Sendable (Int) -> EventLoopFuture<T>
        private var next = 0

        init(
            loop: any EventLoop, recorder: OpenLoopAsync.Recorder, start: UInt64, interval: Double, requests: Int,
            operation: @escaping @Sendable (Int) -> EventLoopFuture<T>
        ) {
            self.loop = loop
            self.recorder = recorder
            self.start = start
            self.interval = interval
            self.requests = requests
            self.operation = operation
        }

        private func due(_ i: Int) -> UInt64 { start + UInt64(Double(i) * interval) }

        func tick() {
            let now = ProcessIO.nowNanos()
            while next < requests, due(next) <= now {
                let intended = due(next)
                let (recorder, start) = (self.recorder, self.start)
                recorder.begin()
                operation(next).whenComplete { result in
                    switch result {
                    case .success:
                        recorder.finish(latency: ProcessIO.nowNanos() &- intended, error: nil, dueAt: intended &- start)
                    case .failure(let error):
                        recorder.finish(latency: nil, error: "\(error)", dueAt: intended &- start)
                    }
                }
                next += 1
            }
            guard next < requests else {
                recorder.doneIssuing()
                return
            }
            let wait = Int64(due(next)) - Int64(ProcessIO.nowNanos())
            loop.scheduleTask(in: .nanoseconds(max(0, wait))) { self.tick() }
        }
    }
}
