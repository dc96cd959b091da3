import Foundation

/// A send forwarded from the sender's home server to the chat's owner server over `/internal/ws`,
/// and the owner's answer on the same connection (docs/chat_protocol.md, "/internal/ws"):
///
///     send <request id>\n{"chatId","sender","clientId","text","retry"}
///     result <request id>\n{"ack":{…}} | {"error":{"code","message"}}
struct PeerSend: Sendable, Hashable {
    var chatId: Int64
    var send: ChatSequencer.Send

    private struct Body: Codable {
        var chatId: String
        var sender: String
        var clientId: String
        var text: String
        var retry: Bool
    }

    private struct AckBody: Codable {
        var chatId: String
        var messageId: String
        var seq: String
        var ts: Int64
        var clientId: String
        var duplicate: Bool
    }

    private struct Result: Codable {
        var ack: AckBody?
        var error: PeerErrorBody?
    }

    /// Written by `EventJSONWriter`, not `JSONEncoder` (one frame per cross-server send; the
    /// JSON is the same, `PeerSendTests` decodes it back).
    func encoded(id: UInt64) -> String {
        var w = EventJSONWriter(capacity: send.text.utf8.count + 128)
        w.decimalString("chatId", chatId)
        w.string("clientId", send.clientId)
        w.bool("retry", send.retry)
        w.string("sender", send.sender)
        w.string("text", send.text)
        return "send \(id)\n" + w.finish()
    }

    /// (request id, send) when `text` is a `send` frame.
    static func parse(_ text: String) -> (UInt64, PeerSend)? {
        guard text.hasPrefix("send "), let nl = text.firstIndex(of: "\n"),
            let id = UInt64(text[text.index(text.startIndex, offsetBy: 5)..<nl]),
            let body = try? JSONDecoder.chat.decode(Body.self, from: Data(text[text.index(after: nl)...].utf8)),
            let chatId = Int64(body.chatId)
        else { return nil }
        return (
            id,
            PeerSend(
                chatId: chatId,
                send: .init(sender: body.sender, clientId: body.clientId, text: body.text, retry: body.retry))
        )
    }

    /// An ack (every successful send) is written by `EventJSONWriter`; an error by `JSONEncoder`.
    static func result(id: UInt64, _ r: Swift.Result<SendAck, ChatError>) -> String {
        switch r {
        case .success(let a):
            var w = EventJSONWriter()
            w.beginObject("ack")
            w.ackMembers(a)
            w.endObject()
            return "result \(id)\n" + w.finish()
        case .failure(let e):
            let body = Result(ack: nil, error: PeerErrorBody(e))
            return "result \(id)\n" + String(decoding: (try? JSONEncoder.chat.encode(body)) ?? Data(), as: UTF8.self)
        }
    }

    /// (request id, JSON body) when `text` is a `result` frame.
    static func parseResultFrame(_ text: String) -> (UInt64, String)? {
        guard text.hasPrefix("result "), let nl = text.firstIndex(of: "\n"),
            let id = UInt64(text[text.index(text.startIndex, offsetBy: 7)..<nl])
        else { return nil }
        return (id, String(text[text.index(after: nl)...]))
    }

    /// The outcome a send's `result` body carries.
    static func decodeResult(_ json: String) -> Swift.Result<SendAck, ChatError> {
        guard let body = try? JSONDecoder.chat.decode(Result.self, from: Data(json.utf8)) else {
            return .failure(ChatError(.internalError, "the owner server's answer was not understood"))
        }
        if let a = body.ack, let chatId = Int64(a.chatId), let seq = Int64(a.seq) {
            return .success(
                SendAck(
                    chatId: chatId, messageId: a.messageId, seq: seq, ts: a.ts, clientId: a.clientId,
                    duplicate: a.duplicate))
        }
        return .failure((body.error ?? PeerErrorBody.nothing).chatError)
    }
}

/// A `ChatError` in a peer `result` frame: `{"code","message","retryAfter"?}`.
struct PeerErrorBody: Codable {
    var code: String
    var message: String
    var retryAfter: Int?

    init(_ e: ChatError) {
        code = e.code.name
        message = e.message
        retryAfter = e.retryAfterSeconds
    }

    private init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// A `result` that carries neither an answer nor an error.
    static let nothing = PeerErrorBody(code: "internal", message: "the owner server answered nothing")

    var chatError: ChatError {
        ChatError(ChatError.Code(name: code) ?? .internalError, message, retryAfterSeconds: retryAfter)
    }
}

/// Presence asked of the server that holds the users' connections (`/api/presence` on any server
/// is exact for every user):
///
///     presence <request id>\n{"users":[…]}
///     result <request id>\n{"presence":[{"userId","online","lastSeen"?}…]}
enum PeerPresence {
    private struct Ask: Codable { var users: [String] }
    private struct Answer: Codable { var presence: [PresenceInfo] }

    static func encoded(id: UInt64, users: [String]) -> String {
        "presence \(id)\n"
            + String(decoding: (try? JSONEncoder.chat.encode(Ask(users: users))) ?? Data(), as: UTF8.self)
    }

    static func parse(_ text: String) -> (UInt64, [String])? {
        guard text.hasPrefix("presence "), let nl = text.firstIndex(of: "\n"),
            let id = UInt64(text[text.index(text.startIndex, offsetBy: 9)..<nl]),
            let ask = try? JSONDecoder.chat.decode(Ask.self, from: Data(text[text.index(after: nl)...].utf8))
        else { return nil }
        return (id, ask.users)
    }

    static func result(id: UInt64, _ presence: [PresenceInfo]) -> String {
        "result \(id)\n"
            + String(decoding: (try? JSONEncoder.chat.encode(Answer(presence: presence))) ?? Data(), as: UTF8.self)
    }

    static func decode(_ json: String) -> [PresenceInfo]? {
        (try? JSONDecoder.chat.decode(Answer.self, from: Data(json.utf8)))?.presence
    }
}

/// A sign-up forwarded to the server that owns the handle, where sign-ups of one handle take turns
/// (`AccountService.register`), so two devices racing for a handle on two servers get one account
/// and one `handle_taken`:
///
///     register <request id>\n{"handle","password"}
///     result <request id>\n{"session":{"userId","token","expiresAt"}} | {"error":{"code","message"}}
enum PeerRegister {
    private struct Ask: Codable {
        var handle: String
        var password: String
    }
    private struct SessionBody: Codable {
        var userId: String
        var token: String
        var expiresAt: Int64
    }
    private struct Answer: Codable {
        var session: SessionBody?
        var error: PeerErrorBody?
    }

    static func encoded(id: UInt64, handle: String, password: String) -> String {
        "register \(id)\n"
            + String(
                decoding: (try? JSONEncoder.chat.encode(Ask(handle: handle, password: password))) ?? Data(),
                as: UTF8.self)
    }

    static func parse(_ text: String) -> (UInt64, handle: String, password: String)? {
        guard text.hasPrefix("register "), let nl = text.firstIndex(of: "\n"),
            let id = UInt64(text[text.index(text.startIndex, offsetBy: 9)..<nl]),
            let ask = try? JSONDecoder.chat.decode(Ask.self, from: Data(text[text.index(after: nl)...].utf8))
        else { return nil }
        return (id, ask.handle, ask.password)
    }

    static func result(id: UInt64, _ r: Swift.Result<AccountService.Session, ChatError>) -> String {
        let body: Answer
        switch r {
        case .success(let s):
            body = Answer(session: SessionBody(userId: s.userId, token: s.token, expiresAt: s.expiresAt), error: nil)
        case .failure(let e):
            body = Answer(session: nil, error: PeerErrorBody(e))
        }
        return "result \(id)\n" + String(decoding: (try? JSONEncoder.chat.encode(body)) ?? Data(), as: UTF8.self)
    }

    static func decode(_ json: String) -> Swift.Result<AccountService.Session, ChatError> {
        guard let body = try? JSONDecoder.chat.decode(Answer.self, from: Data(json.utf8)) else {
            return .failure(ChatError(.internalError, "the handle's owner server answered something not understood"))
        }
        if let s = body.session {
            return .success(AccountService.Session(userId: s.userId, token: s.token, expiresAt: s.expiresAt))
        }
        return .failure((body.error ?? PeerErrorBody.nothing).chatError)
    }
}

/// Sends go to the chat's owner server: this one (nil: the local sequencer places it) or another,
/// over the peer link, waiting for its answer. An owner that does not answer within `timeout`, or
/// whose link drops, gives `storage_unavailable`: the device retries (with `retry: true`) and
/// nothing is stored twice.
struct PeerRouting: ChatRouting {
    let directory: ServerDirectory
    let peers: PeerLinks
    var timeout: Duration = .seconds(10)

    func forward(chatId: Int64, _ send: ChatSequencer.Send) async throws -> SendAck? {
        let owner = directory.owner(ofChat: chatId)
        guard owner.id != directory.serverId else { return nil }
        guard let link = peers.link(to: owner.id) else {
            throw ChatError(
                .storageUnavailable,
                "no link to the chat's owner server (this one is shutting down, or the owner just left); retry")
        }
        return try await link.request(PeerSend(chatId: chatId, send: send), timeout: timeout)
    }

    func membersChanged(chatId: Int64) async throws {
        let owner = directory.owner(ofChat: chatId)
        guard owner.id != directory.serverId else { return }
        guard let link = peers.link(to: owner.id) else {
            throw ChatError(
                .storageUnavailable,
                "no link to the chat's owner server (this one is shutting down, or the owner just left); retry")
        }
        let body = try await link.request(timeout: timeout) { PeerMembersChanged.encoded(id: $0, chatId: chatId) }
        guard PeerMembersChanged.isDone(body) else {
            throw ChatError(.internalError, "the owner server's answer was not understood: \(body.prefix(80))")
        }
    }
}

/// A membership change announced to the chat's owner server, so the members it caches for sends
/// are read again (docs/chat_protocol.md, "/internal/ws"):
///
///     members <request id>\n{"chatId"}
///     result <request id>\n{"done":true}
enum PeerMembersChanged {
    private struct Ask: Codable { var chatId: String }
    private struct Answer: Codable { var done: Bool }

    static func encoded(id: UInt64, chatId: Int64) -> String {
        "members \(id)\n"
            + String(decoding: (try? JSONEncoder.chat.encode(Ask(chatId: String(chatId)))) ?? Data(), as: UTF8.self)
    }

    static func parse(_ text: String) -> (UInt64, Int64)? {
        guard text.hasPrefix("members "), let nl = text.firstIndex(of: "\n"),
            let id = UInt64(text[text.index(text.startIndex, offsetBy: 8)..<nl]),
            let ask = try? JSONDecoder.chat.decode(Ask.self, from: Data(text[text.index(after: nl)...].utf8)),
            let chatId = Int64(ask.chatId)
        else { return nil }
        return (id, chatId)
    }

    static func result(id: UInt64) -> String {
        "result \(id)\n" + String(decoding: (try? JSONEncoder.chat.encode(Answer(done: true))) ?? Data(), as: UTF8.self)
    }

    static func isDone(_ json: String) -> Bool {
        (try? JSONDecoder.chat.decode(Answer.self, from: Data(json.utf8)))?.done == true
    }
}
