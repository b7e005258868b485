// The tls-stream target: what StrandsTLS does around OpenSSL (TLSFilter's BIO, its read loop over
// records that come whole, split or several at once, the plaintext buffer, the early-write buffer, the
// close paths), driven through a real loopback connection to a TLS echo server on a loop in this
// process. The client is OpenSSL on memory BIOs, so the input decides exactly which bytes cross the
// wire and where they are cut. The first byte picks what is sent:
//
//   0  a valid stream: the rest of the input as plaintext, written in pieces and sent in chunks the
//      input chooses; the echo must be exactly the plaintext
//   1  the same with one ciphertext byte changed: the echo must be a prefix of the plaintext (no byte
//      the peer did not send is delivered), and the server must end the connection
//   2  the input's bytes as records after a good handshake
//   3  the input's bytes instead of a ClientHello
//
// In every case the client half-closes after sending, and the server must close within 5 s: a stall
// is a finding, as are a crash, a leak and a wrong echo.

import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// The server and the client context, made on first use: certificates from STRANDS_FUZZ_TLS (a folder
/// holding server.pem and server.key, which scripts/fuzz.sh makes).
final class TLSFuzzRig: @unchecked Sendable {  // Safe: set up once, then only read.
    let group: LoopGroup
    let port: Int
    let client: OpaquePointer

    init() {
        guard let folder = getenv("STRANDS_FUZZ_TLS").map({ String(cString: $0) }) else {
            fatalError("tls-stream needs STRANDS_FUZZ_TLS: a folder with server.pem and server.key")
        }
        do {
            let server = try TLSContext.server(certificateChain: folder + "/server.pem", privateKey: folder + "/server.key")
            self.group = try LoopGroup(loopCount: 1)
            self.port = try self.group.listen(host: "127.0.0.1", port: 0) { stream in
                stream.delegate = FuzzEcho.shared
                try? stream.startTLS(server)
                stream.startReading()
            }.port
        } catch {
            fatalError("tls-stream set-up: \(error)")
        }
        self.client = SSL_CTX_new(TLS_client_method())!
        SSL_CTX_set_verify(self.client, SSL_VERIFY_NONE, nil)
    }

    nonisolated(unsafe) static let shared = TLSFuzzRig()
}

final class FuzzEcho: TCPStreamDelegate, Sendable {
    static let shared = FuzzEcho()
    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) { try? stream.write(bytes) }
}

/// A precondition whose message survives -O (precondition's does not): a finding should say what failed.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

/// What the input was doing, for the message of a stall.
nonisolated(unsafe) var fuzzTrace = ""

/// A small deterministic generator of chunk sizes from one seed byte.
struct Chunks {
    var state: UInt32
    init(_ seed: UInt8) { self.state = UInt32(seed) &* 2_654_435_761 | 1 }
    /// 1...limit, mostly small, sometimes large.
    mutating func next(_ limit: Int) -> Int {
        self.state ^= self.state << 13
        self.state ^= self.state >> 17
        self.state ^= self.state << 5
        let size = self.state % 8 == 0 ? Int(self.state >> 8) % 20_000 : Int(self.state >> 8) % 64
        return max(1, min(limit, size + 1))
    }
}

/// One client connection on a blocking socket; its TLS runs on memory BIOs.
struct FuzzClient {
    let fd: Int32
    let ssl: OpaquePointer
    let toServer: OpaquePointer  // What the client's TLS writes, to send.
    let fromServer: OpaquePointer  // What came from the server, for the client's TLS to read.
    var ended = false

    init(port: Int, context: OpaquePointer) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        require(fd >= 0, "socket")
        var limit = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {  // Loopback: done at once, or refused; not interrupted.
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        require(rc == 0, "connect to the fuzz server: errno \(errno)")
        self.fd = fd
        self.ssl = SSL_new(context)!
        self.toServer = BIO_new(BIO_s_mem())!
        self.fromServer = BIO_new(BIO_s_mem())!
        SSL_set_bio(self.ssl, self.fromServer, self.toServer)
        SSL_set_connect_state(self.ssl)
    }

    func free() {
        SSL_free(self.ssl)
        close(self.fd)
    }

    /// The ciphertext the client's TLS has written, taken out.
    func pending() -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = chunk.withUnsafeMutableBytes { BIO_read(self.toServer, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { return out }
            out += chunk[0..<Int(n)]
        }
    }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }  // The server closed: what is left cannot matter.
            offset += n
        }
    }

    /// Reads once from the socket into the TLS input; false at the end of the stream.
    mutating func receive() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var n: Int
        repeat {  // libFuzzer's timeout alarm interrupts calls.
            n = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
        } while n < 0 && errno == EINTR
        if n == 0 || (n < 0 && errno == ECONNRESET) {
            self.ended = true
            return false
        }
        require(n > 0, "the server neither answered nor closed within 5 s (errno \(errno)); \(fuzzTrace)")
        _ = chunk.withUnsafeBytes { BIO_write(self.fromServer, $0.baseAddress, Int32(n)) }
        return true
    }

    /// Runs the handshake to its end; false if the server ended it.
    mutating func handshake() -> Bool {
        while true {
            let rc = SSL_do_handshake(self.ssl)
            self.send(self.pending())
            if rc == 1 { return true }
            guard SSL_get_error(self.ssl, rc) == SSL_ERROR_WANT_READ, self.receive() else { return false }
        }
    }

    /// Decrypts what has come; nil once the TLS stream fails (or the peer ended it).
    mutating func plaintext() -> [UInt8]? {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = chunk.withUnsafeMutableBytes { SSL_read(self.ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 {
                out += chunk[0..<Int(n)]
                continue
            }
            ERR_clear_error()
            return SSL_get_error(self.ssl, n) == SSL_ERROR_WANT_READ ? out : (out.isEmpty ? nil : out)
        }
    }

    /// Half-closes and reads until the server closes (a stall trips `receive`'s precondition).
    mutating func drainToEnd() -> [UInt8] {
        shutdown(self.fd, Int32(SHUT_WR))
        var echoed: [UInt8] = []
        var failed = false
        while self.receive() {
            if !failed, let more = self.plaintext() { echoed += more } else { failed = true }
        }
        return echoed
    }
}

func fuzzTLSStream(_ input: UnsafeBufferPointer<UInt8>) {
    guard input.count >= 2 else { return }
    let rig = TLSFuzzRig.shared
    var client = FuzzClient(port: rig.port, context: rig.client)
    defer { client.free() }
    let mode = input[0] % 4
    var chunks = Chunks(input[1])
    let rest = Array(input[2...])
    fuzzTrace = "mode \(mode), \(rest.count) bytes"
    if mode == 3 {
        client.send(rest)
        _ = client.drainToEnd()
        return
    }
    guard client.handshake() else { fatalError("the server refused a good handshake") }
    if mode == 2 {
        client.send(rest)
        _ = client.drainToEnd()
        return
    }
    // Plaintext written in pieces (each one or more records), then sent in chunks.
    var offset = 0
    while offset < rest.count {
        let piece = chunks.next(rest.count - offset)
        rest[offset..<(offset + piece)].withUnsafeBytes { _ = SSL_write(client.ssl, $0.baseAddress, Int32($0.count)) }
        offset += piece
    }
    var wire = client.pending()
    if mode == 1 {
        guard !wire.isEmpty else { return }
        let at = (Int(input[1]) * 7919 + rest.count) % wire.count
        wire[at] ^= 0x5A
    }
    var sent = 0
    while sent < wire.count {
        let size = chunks.next(wire.count - sent)
        client.send(Array(wire[sent..<(sent + size)]))
        sent += size
    }
    if mode == 0 {
        var echoed: [UInt8] = []
        while echoed.count < rest.count {
            fuzzTrace = "mode 0: \(echoed.count) of \(rest.count) plaintext bytes echoed; \(wire.count) bytes of ciphertext sent"
            guard client.receive() else { fatalError("the server closed a good stream after \(echoed.count) of \(rest.count) bytes") }
            guard let more = client.plaintext() else { fatalError("the echo did not decrypt") }
            echoed += more
        }
        require(echoed == rest, "the echo differs from what was sent")
        _ = client.drainToEnd()
    } else {
        let echoed = client.drainToEnd()
        require(echoed.count <= rest.count && Array(rest[0..<echoed.count]) == echoed,
                     "a changed record delivered bytes that were not sent")
    }
}
