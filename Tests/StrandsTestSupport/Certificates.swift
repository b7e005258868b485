import Foundation

/// Certificates made at run time with the openssl command: a CA, a server certificate it signed for
/// localhost and 127.0.0.1 (ECDSA P-256), and a second CA that signed nothing here.
public final class TestCertificates: Sendable {
    public let folder: URL
    public var ca: String { self.folder.appendingPathComponent("ca.pem").path }
    public var otherCA: String { self.folder.appendingPathComponent("other-ca.pem").path }
    public var chain: String { self.folder.appendingPathComponent("server.pem").path }
    public var key: String { self.folder.appendingPathComponent("server.key").path }

    public init() throws {
        self.folder = FileManager.default.temporaryDirectory.appendingPathComponent("strands-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.folder, withIntermediateDirectories: true)
        let ext = self.folder.appendingPathComponent("san.ext")
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n".write(to: ext, atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=Strands Test CA"],
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "other-ca.key",
             "-out", "other-ca.pem", "-days", "2", "-subj", "/CN=Another CA"],
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "san.ext"],
        ]
        try self.run(steps)
    }

    /// A certificate for `names` (DNS names; "*.x.test" for a wildcard), signed by ``ca``, in `base`.pem
    /// and `base`.key, valid from now for `days` (a negative count: one that expired that long ago).
    public func issue(_ names: [String], as base: String, days: Int = 2) throws -> (chain: String, key: String) {
        let ext = "\(base).ext"
        try ("subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ",") + "\nbasicConstraints=CA:FALSE\n")
            .write(to: self.folder.appendingPathComponent(ext), atomically: true, encoding: .utf8)
        try self.run([
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(base).key",
             "-out", "\(base).csr", "-subj", "/CN=\(names[0])"],
            ["x509", "-req", "-in", "\(base).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "\(base).pem", "-days", "\(days)", "-extfile", ext],
        ])
        return (self.folder.appendingPathComponent("\(base).pem").path, self.folder.appendingPathComponent("\(base).key").path)
    }

    /// Runs each openssl step in `folder`, by posix_spawn: Foundation's Process reads past a buffer under
    /// AddressSanitizer, and these certificates are made for the sanitized runs too.
    private func run(_ steps: [[String]]) throws {
        let errors = self.folder.appendingPathComponent("openssl-errors.txt").path
        for step in steps {
            let script = "cd \"$1\" && shift && exec /usr/bin/openssl \"$@\" >/dev/null 2>\"$STRANDS_OPENSSL_ERRORS\""
            let arguments = ["/bin/sh", "-c", script, "sh", self.folder.path] + step
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            let settings: [String] = ["STRANDS_OPENSSL_ERRORS=\(errors)", "PATH=/usr/bin:/bin"]
            let environment: [UnsafeMutablePointer<CChar>?] = settings.map { strdup($0) } + [nil]
            defer { for pointer in environment { free(pointer) } }
            let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environment)
            guard spawned == 0 else { throw CertificateError(description: "posix_spawn openssl: \(spawned)") }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            guard status == 0 else {
                let text = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
                throw CertificateError(description: "openssl \(step.joined(separator: " ")): \(text)")
            }
        }
    }

    deinit { try? FileManager.default.removeItem(at: self.folder) }
}

public struct CertificateError: Error, CustomStringConvertible { public let description: String }

