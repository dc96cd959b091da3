import Logging
import ServiceLifecycle

extension ChatServer {
    /// Runs until SIGTERM or SIGINT, then shuts down gracefully (what `confab chat serve` does).
    public func runUntilTerminated() async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: self)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
