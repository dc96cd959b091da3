/// One event forwarded from a chat server to the owner of some of its recipients, as a text frame
/// on `/internal/ws` (docs/chat_protocol.md, "Many servers"):
///
///     deliver <event type> <user>,<user>,...\n<event JSON exactly as devices get it>
///
/// User ids are `[a-z0-9_]`, so neither the space nor the comma needs escaping, and the event is
/// encoded once by the sender and never re-encoded by the receiver.
struct PeerFrame: Sendable, Equatable {
    var type: String
    var users: [String]
    var json: String

    func encoded() -> String {
        "deliver \(type) \(users.joined(separator: ","))\n\(json)"
    }

    /// Nil when `text` is not a `deliver` frame (a newer sender's frame kind is ignored).
    static func parse(_ text: String) -> PeerFrame? {
        guard let newline = text.firstIndex(of: "\n") else { return nil }
        let header = text[..<newline].split(separator: " ", omittingEmptySubsequences: false)
        guard header.count == 3, header[0] == "deliver", !header[1].isEmpty else { return nil }
        let users = header[2].split(separator: ",").map(String.init)
        return PeerFrame(type: String(header[1]), users: users, json: String(text[text.index(after: newline)...]))
    }
}

extension EncodedEvent {
    init(type: String, json: String) {
        self.type = type
        self.json = json
    }
}
