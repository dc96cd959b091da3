import NIOCore
import NIOSSL
import Synchronization

/// TLS for the node protocol (docs/security.md § TLS), off by default: on loopback it adds cost
/// and protects nothing. One setting serves both ends. A node with a certificate and key serves
/// TLS on its one port to clients and nodes alike, and when it connects to other nodes it verifies
/// them against `trustRootsPath`. A client verifies the nodes the same way: the certificate must
/// chain to those roots and name the address dialled (an IP address must be in the certificate's
/// subjectAltName).
///
/// The cluster-secret challenge still runs inside TLS. TLS hides the traffic and proves the
/// server; the secret proves a node or an operator.
public struct NodeTLS: Sendable, Hashable {
    /// PEM certificate chain a node presents (nil on a client).
    public var certificateChainPath: String?
    /// PEM private key of that certificate.
    public var privateKeyPath: String?
    /// PEM CA certificates that nodes' certificates must chain to; nil uses the system's roots.
    public var trustRootsPath: String?

    public init(certificateChainPath: String? = nil, privateKeyPath: String? = nil, trustRootsPath: String? = nil) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.trustRootsPath = trustRootsPath
    }

    /// The context a node serves with; fails with what is wrong with which file.
    package func serverContext() throws(NodeTLSError) -> NIOSSLContext {
        guard let certificateChainPath, let privateKeyPath else {
            throw NodeTLSError("a node serving TLS needs both a certificate chain (--tls-cert) and its key (--tls-key)")
        }
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateChainPath)
        } catch {
            throw NodeTLSError("cannot read the certificate chain \(certificateChainPath) as PEM", cause: error)
        }
        do {
            key = try NIOSSLPrivateKey(file: privateKeyPath, format: .pem)
        } catch {
            throw NodeTLSError("cannot read the private key \(privateKeyPath) as PEM", cause: error)
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw NodeTLSError(
                "the certificate \(certificateChainPath) and key \(privateKeyPath) do not make a TLS server (do they match?)",
                cause: error)
        }
    }

    /// The context clients and nodes dial other nodes with.
    package func clientContext() throws(NodeTLSError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let trustRootsPath {
            configuration.trustRoots = .file(trustRootsPath)
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw NodeTLSError("cannot use \(trustRootsPath ?? "the system's") trust roots", cause: error)
        }
    }

    /// Adds the client side of TLS to a new connection's pipeline (first, below the framing).
    package static func addClientHandler(
        _ context: NIOSSLContext, host: String, to channel: any Channel
    ) throws {
        // SNI takes host names only; for an IP address the certificate is checked against the
        // address dialled.
        let isIP = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        try channel.pipeline.syncOperations.addHandler(
            NIOSSLClientHandler(context: context, serverHostname: isIP ? nil : host))
    }
}

/// A TLS setting that cannot be used: a file that is missing or not PEM, a key that does not
/// match, a half configuration.
public struct NodeTLSError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let cause: (any Error)?

    init(_ message: String, cause: (any Error)? = nil) {
        self.message = message
        self.cause = cause
    }

    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}
