import Metrics

/// The chat server's swift-metrics instruments (Prometheus-style names; next to free with no
/// backend bootstrapped).
///
/// - `confab_chat_messages_total`: messages accepted and stored.
/// - `confab_chat_duplicate_sends_total`: retried sends answered from `message_ids`.
/// - `confab_chat_send_duration_seconds`: from a send's arrival to its ack (QUORUM writes included).
/// - `confab_chat_deliveries_total`: events queued for devices.
/// - `confab_chat_errors_total{code}`: errors answered, by code.
/// - `confab_chat_slow_consumer_closes_total`: devices closed with 4008.
/// - `confab_chat_devices`: devices connected now (WebSocket and long polling).
/// - `confab_chat_forwarded_total`: event frames queued for another chat server (`/internal/ws`).
/// - `confab_chat_forward_dropped_total`: frames dropped because a peer's queue was full.
/// - `confab_chat_forward_received_total`: event frames received from other chat servers.
/// - `confab_chat_peer_connects_total`: server-to-server connections opened by this server.
/// - `confab_chat_peer_links`: links to other chat servers now.
/// - `confab_chat_wrong_server_total`: connections sent on to their owner server.
/// - `confab_chat_server_full_total`, `confab_chat_peer_queue_depth`, `confab_chat_live_servers`.
/// - `confab_chat_send_ring_reads_total`, `confab_chat_send_ring_writes_total`: ring requests the
///   send path made (on the chats' owner servers): per message, what a send costs the ring.
struct ChatMetrics: Sendable {
    let messages = Counter(label: "confab_chat_messages_total")
    let duplicates = Counter(label: "confab_chat_duplicate_sends_total")
    let sendDuration = Timer(label: "confab_chat_send_duration_seconds", preferredDisplayUnit: .milliseconds)
    let deliveries = Counter(label: "confab_chat_deliveries_total")
    let slowConsumers = Counter(label: "confab_chat_slow_consumer_closes_total")
    let devices = Gauge(label: "confab_chat_devices")
    let forwarded = Counter(label: "confab_chat_forwarded_total")
    let forwardDropped = Counter(label: "confab_chat_forward_dropped_total")
    let forwardReceived = Counter(label: "confab_chat_forward_received_total")
    let peerConnects = Counter(label: "confab_chat_peer_connects_total")
    let peerRefused = Counter(label: "confab_chat_peer_handshakes_refused_total")
    let peerLinks = Gauge(label: "confab_chat_peer_links")
    let wrongServer = Counter(label: "confab_chat_wrong_server_total")
    /// WebSockets refused because the server held `maxConnections`.
    let serverFull = Counter(label: "confab_chat_server_full_total")
    /// Event frames waiting in the queues to other chat servers, over all peers (set at scrape).
    let peerQueueDepth = Gauge(label: "confab_chat_peer_queue_depth")
    /// Chat servers this one sees live, itself included (set at scrape).
    let liveServers = Gauge(label: "confab_chat_live_servers")
    /// Ring reads and writes made by `ChatSequencer` (members, fence, batches, openings, lookups).
    let sendRingReads = Counter(label: "confab_chat_send_ring_reads_total")
    /// Changes of the live set of chat servers this server saw (each makes owners read their
    /// chats' members again; docs/chat_ordering.md, "Members").
    let liveSetChanges = Counter(label: "confab_chat_live_set_changes_total")
    /// 1 once the live set has held for the settle time (every server's view agrees), else 0.
    let liveSetSettled = Gauge(label: "confab_chat_live_set_settled")
    let sendRingWrites = Counter(label: "confab_chat_send_ring_writes_total")

    func error(_ code: ChatError.Code) {
        Counter(label: "confab_chat_errors_total", dimensions: [("code", code.name)]).increment()
    }

    static let shared = ChatMetrics()
}
