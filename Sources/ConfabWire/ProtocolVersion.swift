/// The wire protocol's version, sent in every frame header; see docs/node_protocol.md.
///
/// Version 2 (issue 12) added the node id to Hello, the authentication challenge to HelloAck and
/// the Authenticate/AuthenticateAck exchange. Nodes of version 1 and 2 do not talk to each other:
/// a ring is upgraded by stopping it and starting it with the new binary.
package enum ProtocolVersion {
    package static let current: UInt8 = 2
}
