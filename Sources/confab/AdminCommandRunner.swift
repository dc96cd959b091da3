import ArgumentParser
import ConfabClient
import ConfabRing
import ConfabWire
import Foundation

/// What `confab flush` and `confab compact` share: send the Admin request to each target node
/// (or once, fanned out by the first node), print a line per node with the time it took, and
/// exit non-zero if any node failed — so a script notices a node that did not do the work.
enum AdminCommandRunner {
    static func run(
        _ operation: AdminRequest.Operation, targets options: AdminTargetOptions, fanOut: Bool,
        timeoutSeconds: Double
    ) throws {
        let addresses = try options.addresses()
        let timeout = Duration.milliseconds(Int(timeoutSeconds * 1000))
        var configuration = ConfabClient.Configuration(nodes: addresses)
        configuration.clientName = "confab-cli"
        configuration.credentials = try options.credentials()
        let client = ConfabClient(configuration: configuration)
        let results: [AdminResult] = try runBlocking {
            defer { Task { await client.shutdown() } }
            if fanOut {
                var lastError: (any Error)?
                for address in addresses {
                    do {
                        return try await client.admin(operation, scope: .ring, at: address, timeout: timeout).results
                    } catch let e as ConfabClientError where e.code == .noNodeReachable {
                        lastError = e
                    }
                }
                throw lastError ?? ValidationError("no node to send \(operation) to")
            }
            return await withTaskGroup(of: AdminResult.self) { group in
                for address in addresses {
                    group.addTask {
                        let start = ContinuousClock.now
                        do {
                            let r = try await client.admin(operation, scope: .node, at: address, timeout: timeout)
                            return r.results.first ?? AdminResult(nodeID: "", address: "\(address)", elapsedMicros: 0)
                        } catch {
                            let (s, atto) = (ContinuousClock.now - start).components
                            return AdminResult(
                                nodeID: "", address: "\(address)",
                                elapsedMicros: UInt64(s * 1_000_000 + atto / 1_000_000_000_000), error: "\(error)")
                        }
                    }
                }
                var out: [AdminResult] = []
                for await r in group { out.append(r) }
                return out.sorted { $0.address < $1.address }
            }
        }
        for r in results {
            if options.json {
                print(jsonLine(operation: operation, result: r))
            } else {
                let ms = String(format: "%.1f ms", Double(r.elapsedMicros) / 1000)
                let id = r.nodeID.isEmpty ? "" : "  \(r.nodeID)"
                if let error = r.error {
                    print("\(r.address)  \(operation)  FAILED after \(ms): \(error)")
                } else {
                    print("\(r.address)  \(operation)  ok  \(ms)\(id)")
                }
            }
        }
        let failed = results.filter { $0.error != nil }.count
        if failed > 0 {
            FileHandle.standardError.write(
                Data("confab \(operation): failed on \(failed) of \(results.count) node(s)\n".utf8))
            throw ExitCode.failure
        }
    }

    private static func jsonLine(operation: AdminRequest.Operation, result r: AdminResult) -> String {
        var object: [String: Any] = [
            "node": r.address, "id": r.nodeID, "operation": operation.description, "ok": r.error == nil,
            "elapsed_ms": Double(r.elapsedMicros) / 1000,
        ]
        if let e = r.error { object["error"] = e }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
