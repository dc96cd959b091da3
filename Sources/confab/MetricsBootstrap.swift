import Metrics
import Prometheus

/// The process's metrics backend: a Prometheus registry behind the swift-metrics instruments
/// (`NodeMetrics`, `ClusterMetrics`, `EngineMetrics`, `ChatMetrics`…), exposed on `/metrics`.
///
/// Bootstrapped once, first thing in a long-running command (`confab node`, `confab chat
/// serve`), before any instrument exists: swift-metrics binds each instrument to the factory
/// present when it is created, so one made earlier would never be exported. Libraries never
/// bootstrap, so in-process tests keep the no-op backend.
enum MetricsBootstrap {
    static let registry = PrometheusCollectorRegistry()

    private static let once: Void = {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Request and sync latencies sit well below the default's 5 ms floor on loopback.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        MetricsSystem.bootstrap(factory)
    }()

    /// Installs the Prometheus backend (idempotent).
    static func bootstrap() { _ = once }

    /// The registry in the Prometheus text format, then the standard process metrics (what
    /// `/metrics` serves).
    @Sendable static func exposition() -> [UInt8] { registry.emitToBuffer() + ProcessMetrics.exposition() }
}
