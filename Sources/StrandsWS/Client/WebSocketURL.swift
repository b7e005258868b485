/// A parsed `ws://` or `wss://host[:port][/path][?query]` URL.
public struct WebSocketURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// `wss://`: TLS under the WebSocket (port 443 unless given).
    public var isSecure = false
    /// Path and query, as sent in the request line; at least `/`.
    public var target: String

    /// Parses `text`.
    public init(_ text: String) throws(WebSocketError) {
        var rest: Substring
        if text.lowercased().hasPrefix("ws://") {
            rest = text.dropFirst(5)
        } else if text.lowercased().hasPrefix("wss://") {
            rest = text.dropFirst(6)
            self.isSecure = true
        } else {
            throw .invalidURL("'\(text)' is not a ws:// or wss:// URL")
        }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if target.isEmpty || target.first == "?" { target = "/" + target }
        if authority.contains("@") { throw .invalidURL("'\(text)': user information is not supported") }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL("'\(text)': unclosed IPv6 bracket") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw .invalidURL("'\(text)': junk after IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw .invalidURL("'\(text)': no host") }
        var port = self.isSecure ? 443 : 80
        if let portText {
            guard let parsed = Int(portText), (1...65535).contains(parsed) else {
                throw .invalidURL("'\(text)': bad port '\(portText)'")
            }
            port = parsed
        }
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .invalidURL("'\(text)': the path must be percent-encoded ASCII")
        }
        self.host = String(host)
        self.port = port
        self.target = target
    }

    /// The `Host` header value.
    var hostHeader: String {
        let name = self.host.contains(":") ? "[\(self.host)]" : self.host
        return self.port == (self.isSecure ? 443 : 80) ? name : "\(name):\(self.port)"
    }
}
