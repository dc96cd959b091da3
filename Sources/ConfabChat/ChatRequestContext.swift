import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// Hummingbird's WebSocket request context plus the peer's address, which the login and
/// sign-up limits key on (`CredentialGuard`).
struct ChatRequestContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    /// The client's IP address without the port ("127.0.0.1"); nil when the channel has none.
    let clientAddress: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        clientAddress = source.channel.remoteAddress?.ipAddress
    }
}
