import COpenSSL

/// Why TLS failed: the kind, OpenSSL's reason, and for a peer certificate that did not verify, the
/// certificate's problem as OpenSSL names it ("certificate has expired", "unable to get local issuer
/// certificate", "hostname mismatch"…).
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// A certificate, key or CA file could not be loaded or does not fit.
        case configuration
        /// The handshake failed (no shared protocol or cipher, a bad record, plaintext on a TLS port…).
        case handshake
        /// The peer's certificate did not verify: `certificateProblem` says why.
        case verification
        /// A record after the handshake was refused.
        case protocolError
    }

    public let kind: Kind
    public let reason: String
    public let certificateProblem: String?

    public init(_ kind: Kind, _ reason: String, certificateProblem: String? = nil) {
        self.kind = kind
        self.reason = reason
        self.certificateProblem = certificateProblem
    }

    public var description: String {
        "TLS \(self.kind.rawValue): \(self.reason)" + (self.certificateProblem.map { " (certificate: \($0))" } ?? "")
    }

    /// OpenSSL's error queue, emptied: its oldest entry's text, or `fallback`.
    static func drainQueue(_ fallback: String) -> String {
        var first: String?
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            if first == nil {
                var buffer = [CChar](repeating: 0, count: 256)
                ERR_error_string_n(code, &buffer, buffer.count)
                first = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return first ?? fallback
    }
}
