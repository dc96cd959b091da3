import ConfabRing
import ConfabWire

/// How a moving node asks a member whether it has seen the move (`Bootstrap` and `Decommission`
/// say why each move is confirmed twice, and `MoveView.membersToConfirm` whom they ask).
extension ClusterService {
    /// Asks `member` whether it sees `local` as `status` (with exactly `tokens` when given):
    /// the generation it reports for itself, or why not.
    nonisolated func askMoveStatus(
        _ member: NodeID, sees local: NodeID, as status: NodeStatus, tokens: [Token]?, timeout: Duration
    ) async -> Result<Int64, MoveRefusal> {
        let wanted = status.rawValue.lowercased()
        let wantedTokens = tokens.map { $0.map(\.value).sorted() }
        do {
            let reply = try await messenger.request(.status, to: member.address, timeout: timeout)
            guard case .statusResponse(let s) = reply else {
                return .failure(MoveRefusal("\(member.address) answered Status with \(reply.type)"))
            }
            guard let me = s.nodes.first(where: { $0.id == local.id }), me.state == wanted,
                wantedTokens.map({ $0 == me.tokenValues.sorted() }) ?? true
            else {
                return .failure(MoveRefusal("\(member.address) does not see this node as \(wanted) yet"))
            }
            return .success(s.nodes.first { $0.id == member.id }?.generation ?? 0)
        } catch {
            return .failure(MoveRefusal("\(member.address) did not answer Status: \(error)"))
        }
    }
}
