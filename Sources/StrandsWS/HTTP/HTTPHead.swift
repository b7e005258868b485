/// Limits on an HTTP request or response head, the first bytes an untrusted peer sends.
public struct HTTPLimits: Sendable, Equatable {
    /// The longest request line; longer is 414 URI Too Long. 8 KiB, as common servers allow.
    public var maxRequestLineLength = 8 * 1024
    /// The most header fields; more is 431. 100 is far above what browsers send (~20).
    public var maxHeaderCount = 100
    /// The largest head in bytes, request line included; larger is 431. 16 KiB.
    public var maxHeadBytes = 16 * 1024
    /// The largest body of a plain HTTP request (`Content-Length`); larger is 413. 1 MiB. A body sent
    /// chunked is refused with 411: send its length.
    public var maxBodyBytes = 1 << 20

    public init() {}
}

/// Why a head was refused, with the status a server answers.
struct HTTPHeadError: Error, Equatable {
    let status: Int
    let reason: String
}

/// Collects a head (start line + fields + blank line) from the byte stream and splits it.
///
/// Bytes after the blank line are left in ``buffer`` for whoever speaks next (a client's first frame may
/// arrive in the same read as its request). The buffer exists only during the handshake.
final class HTTPHeadReader {
    var buffer = RawBuffer()
    private var scanned = 0
    let limits: HTTPLimits

    init(limits: HTTPLimits) { self.limits = limits }

    deinit { self.buffer.free() }

    /// Adds bytes; returns the head's length once the blank line is in, `nil` while incomplete.
    func append(_ bytes: UnsafeRawBufferPointer) throws(HTTPHeadError) -> Int? {
        self.buffer.append(bytes)
        let data = self.buffer.bytes
        var i = max(self.scanned - 3, 0)
        while i + 3 < data.count {
            if data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 {
                if i + 4 > self.limits.maxHeadBytes { throw HTTPHeadError(status: 431, reason: "head too large") }
                return i + 4
            }
            i += 1
        }
        self.scanned = data.count
        // Refuse as soon as a limit is certain to be broken, not when the peer stops sending.
        if !data.contains(10) && data.count > self.limits.maxRequestLineLength {
            throw HTTPHeadError(status: 414, reason: "request line too long")
        }
        if data.count > self.limits.maxHeadBytes { throw HTTPHeadError(status: 431, reason: "head too large") }
        return nil
    }

    /// Splits a complete head into its start line and fields.
    func split(length: Int) throws(HTTPHeadError) -> (startLine: String, headers: HTTPHeaders) {
        let head = UnsafeRawBufferPointer(rebasing: self.buffer.bytes[0..<(length - 4)])
        var lines = head.split(separator: 10, omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw HTTPHeadError(status: 400, reason: "empty request") }
        func text(_ line: Slice<UnsafeRawBufferPointer>) throws(HTTPHeadError) -> String {
            // Every line must end in CRLF; the final one lost its CRLF to the blank-line search.
            var bytes = line
            if bytes.last == 13 { bytes = bytes.dropLast() }
            if bytes.contains(13) || bytes.contains(0) { throw HTTPHeadError(status: 400, reason: "stray CR or NUL") }
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw HTTPHeadError(status: 400, reason: "head is not UTF-8")
            }
            return string
        }
        let startLine = try text(lines.removeFirst())
        if startLine.utf8.count > self.limits.maxRequestLineLength {
            throw HTTPHeadError(status: 414, reason: "request line too long")
        }
        if lines.count > self.limits.maxHeaderCount {
            throw HTTPHeadError(status: 431, reason: "more than \(self.limits.maxHeaderCount) header fields")
        }
        var headers = HTTPHeaders()
        for line in lines {
            let field = try text(line)
            guard let colon = field.utf8.firstIndex(of: UInt8(ascii: ":")),
                  let first = field.utf8.first, first != UInt8(ascii: " "), first != UInt8(ascii: "\t")
            else { throw HTTPHeadError(status: 400, reason: "malformed header field") }
            let name = field[..<colon]
            guard !name.isEmpty, name.utf8.allSatisfy(Self.isTokenCharacter) else {
                throw HTTPHeadError(status: 400, reason: "malformed header name")
            }
            headers.add(name: String(name), value: field[field.index(after: colon)...].trimmingHTTPWhitespace())
        }
        return (startLine, headers)
    }

    func release() { self.buffer.free() }

    /// RFC 9110 §5.6.2 tchar.
    static func isTokenCharacter(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }
}

/// A request head as the server's upgrade hook and plain-HTTP handler see it.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent, e.g. `/ws/chat?room=1`.
    public var target: String
    /// The path part of the target.
    public var path: Substring { self.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "" }
    /// The query part of the target (after `?`), if any.
    public var query: Substring? {
        let parts = self.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count > 1 ? parts[1] : nil
    }
    /// `HTTP/1.1` and the like.
    public var version: String
    public var headers: HTTPHeaders
    /// The client's address.
    public var remoteAddress: SocketAddress?
    /// The body of a plain HTTP request (`Content-Length` bytes, up to ``HTTPLimits/maxBodyBytes``);
    /// empty for an upgrade request.
    public var body: [UInt8]

    public init(method: String, target: String, version: String = "HTTP/1.1", headers: HTTPHeaders = HTTPHeaders(),
                remoteAddress: SocketAddress? = nil, body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.remoteAddress = remoteAddress
        self.body = body
    }

    /// Parses `METHOD SP target SP HTTP/x.y`.
    static func parse(startLine: String, headers: HTTPHeaders) throws(HTTPHeadError) -> HTTPRequest {
        let parts = startLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].utf8.allSatisfy(HTTPHeadReader.isTokenCharacter),
              parts[1].first == "/" || parts[1].hasPrefix("http://") || parts[1] == "*"
        else { throw HTTPHeadError(status: 400, reason: "malformed request line") }
        guard parts[2].hasPrefix("HTTP/1.") else {
            throw HTTPHeadError(status: 505, reason: "unsupported HTTP version")
        }
        return HTTPRequest(method: String(parts[0]), target: String(parts[1]), version: String(parts[2]), headers: headers)
    }
}

/// A response to a plain HTTP request or to a refused upgrade. The connection closes after it.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: Int, contentType: String, body: String) {
        self.init(status: status, headers: ["Content-Type": contentType], body: Array(body.utf8))
    }

    /// A short plain-text response whose body is the reason phrase.
    public static func status(_ status: Int, headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        var response = HTTPResponse(status: status, headers: headers, body: Array("\(HTTPResponse.reason(status))\n".utf8))
        response.headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        return response
    }

    /// The serialized response, with `Content-Length` and `Connection: close`.
    func serialized() -> [UInt8] {
        var head = "HTTP/1.1 \(self.status) \(HTTPResponse.reason(self.status))\r\n"
        for field in self.headers where !field.name.caseInsensitiveEquals("Content-Length") {
            head += "\(field.name): \(field.value)\r\n"
        }
        head += "Content-Length: \(self.body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + self.body
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 101: "Switching Protocols"
        case 200: "OK"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 414: "URI Too Long"
        case 426: "Upgrade Required"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}
