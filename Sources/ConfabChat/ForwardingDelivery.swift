/// Delivery over many chat servers: each recipient's devices are connected to the recipient's
/// owner server (`ServerDirectory.owner(of:)`; clients connecting elsewhere are sent on with
/// `wrong_server`), so the users are grouped by owner, local ones go to the hub and the rest are
/// queued, one frame per owner, on the persistent links to those servers — without waiting, so the
/// owners are reached in parallel and a slow or dead peer never holds up the caller.
///
/// Guarantee: as `Delivery` — best effort, at most once per device. Events arriving from another
/// server (`/internal/ws`) go to the local hub only, never forwarded again, so views of the live
/// set that disagree for a moment cannot make loops; at worst a live copy is lost and the device
/// gets the message from `sync`.
struct ForwardingDelivery: Delivery {
    let hub: ConnectionHub
    let directory: ServerDirectory
    let peers: PeerLinks

    func deliver(_ event: ServerEvent, to users: Set<String>, excludingDevice: UInt64?) async {
        guard !users.isEmpty else { return }
        let encoded = EncodedEvent(event)
        let ownId = directory.serverId
        var local: [String] = []
        var remote: [String: (address: String, users: [String])] = [:]
        for user in users {
            let owner = directory.owner(of: user)
            if owner.id == ownId {
                local.append(user)
            } else {
                remote[owner.id, default: (owner.address, [])].users.append(user)
            }
        }
        if !local.isEmpty { hub.deliver(encoded, to: local, excludingDevice: excludingDevice) }
        for (peerId, group) in remote {
            peers.link(to: peerId)?
                .send(PeerFrame(type: encoded.type, users: group.users.sorted(), json: encoded.json))
        }
    }
}
