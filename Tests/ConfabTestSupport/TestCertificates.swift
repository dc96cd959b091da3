import Foundation

/// A throwaway CA and a certificate for 127.0.0.1 signed by it (P-256, valid two days), made with
/// the openssl command line in a test's temporary directory: what TLS tests serve and trust.
package struct TestCertificates: Sendable {
    package let caPath: String
    package let certificatePath: String
    package let keyPath: String

    /// Makes a CA named `name` and a node certificate for IP 127.0.0.1 under `directory`.
    package static func make(in directory: String, name: String = "confab-test") async throws -> TestCertificates {
        let openssl = "/usr/bin/openssl"
        let ca = "\(directory)/\(name)-ca.pem"
        let caKey = "\(directory)/\(name)-ca.key"
        let key = "\(directory)/\(name)-node.key"
        let csr = "\(directory)/\(name)-node.csr"
        let certificate = "\(directory)/\(name)-node.pem"
        let extensions = "\(directory)/\(name)-ext.cnf"
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: extensions, atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                caKey, "-out", ca, "-days", "2", "-subj", "/CN=\(name) CA",
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                csr, "-subj", "/CN=\(name) node",
            ],
            [
                "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", certificate,
                "-days", "2", "-extfile", extensions,
            ],
        ]
        for step in steps {
            let run = try await TestCommand.run(openssl, step)
            guard run.status == 0 else {
                throw TestCertificatesError(description: "openssl \(step.joined(separator: " ")) failed: \(run.err)")
            }
        }
        return TestCertificates(caPath: ca, certificatePath: certificate, keyPath: key)
    }
}

package struct TestCertificatesError: Error, CustomStringConvertible {
    package let description: String
}
