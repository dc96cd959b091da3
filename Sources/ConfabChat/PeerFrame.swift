/// One event forwarded from a chat server to the owner of some of its recipients, as a text frame
/// on `/internal/ws` (docs/chat_protocol.md, "Many servers"):
///
///     deliver <event type> <user>,<user>,...\n<event JSON exactly as devices get it>
///
/// User ids are `[a-z0-9_]`, so neither the space nor the comma needs escaping, and the event is
/// encoded once by the sender and never re-encoded by the receiver. A receiver that does not own
/// some of the users (the servers' views of the live set disagree for a moment) forwards them once
/// more, to the owner in its view, as `deliver1` — which is never forwarded again, so no loop.
struct PeerFrame: Sendable, Equatable {
    var type: String
    var users: [String]
    var json: String
    /// True on a frame already forwarded once (`deliver1`).
    var forwarded = false

    func encoded() -> String {
        "\(forwarded ? "deliver1" : "deliver") \(type) \(users.joined(separator: ","))\n\(json)"
    }

    /// Nil when `text` is not a `deliver` frame (a newer sender's frame kind is ignored).
    static func parse(_ text: String) -> PeerFrame? {
        guard let newline = text.firstIndex(of: "\n") else { return nil }
        let header = text[..<newline].split(separator: " ", omittingEmptySubsequences: false)
        guard header.count == 3, header[0] == "deliver" || header[0] == "deliver1", !header[1].isEmpty else {
            return nil
        }
        let users = header[2].split(separator: ",").map(String.init)
        return PeerFrame(
            type: String(header[1]), users: users, json: String(text[text.index(after: newline)...]),
            forwarded: header[0] == "deliver1")
    }
}
