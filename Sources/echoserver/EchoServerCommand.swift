import ArgumentParser
import StrandsCLI

/// The flags of the PyStrands Go echo server, in both spellings (`-port` and `--port`).
struct EchoServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echoserver",
        abstract: "A WebSocket echo server on StrandsWS: every message under /ws/ comes back with its own type.",
        discussion: """
            GET /health answers {"status":"ok","connections":N,"messages":N,"errors":N};
            GET /metrics the same counters in Prometheus' text format, and per room with -pubsub.
            SIGINT or SIGTERM: stop accepting, close every client with 1001, wait up to -grace seconds, exit 0.
            A second signal exits at once.
            """
    )

    @Option(name: [.customLong("port", withSingleDash: true), .long], help: "TCP port; 0 picks a free one.")
    var port = 8082

    @Option(name: [.customLong("host", withSingleDash: true), .long], help: "Address to listen on.")
    var host = "0.0.0.0"

    @Option(name: [.customLong("workers", withSingleDash: true), .long],
            help: "Event loops, one thread each, pinned to cores; 0 = one per core.")
    var workers = 0

    @Option(name: [.customLong("max-message", withSingleDash: true), .long],
            help: "Largest message in bytes; a larger one closes the connection with 1009.")
    var maxMessage = 1 << 20

    @Option(name: [.customLong("grace", withSingleDash: true), .long],
            help: "Seconds to wait for close handshakes on shutdown.")
    var grace = 5.0

    @Option(name: [.customLong("ping-interval", withSingleDash: true), .long],
            help: "Seconds without input before a client is pinged; 0 = never.")
    var pingInterval = 30.0

    @Option(name: [.customLong("idle-timeout", withSingleDash: true), .long],
            help: "Seconds without input before a client is closed with 1001 (idle timeout); 0 = never.")
    var idleTimeout = 75.0

    @Option(name: [.customLong("compression", withSingleDash: true), .long],
            help: "permessage-deflate: off, shared (no context takeover, no memory per connection) or dedicated (context takeover, a compressor per connection).")
    var compression = CompressionChoice.off

    @Flag(name: [.customLong("pubsub", withSingleDash: true), .long],
          help: "Rooms: a connection on /ws/room/NAME joins room NAME, and every message it sends goes to every member (itself too).")
    var pubsub = false

    @Option(name: [.customLong("redis", withSingleDash: true), .long],
            help: "With -pubsub: rooms span every echoserver on this Redis (HOST:PORT), through its pub/sub.")
    var redis: String?

    @Option(name: [.customLong("tls-cert", withSingleDash: true), .long],
            help: "Serve wss:// and https:// with this PEM certificate chain (leaf first); needs -tls-key.")
    var tlsCert: String?

    @Option(name: [.customLong("tls-key", withSingleDash: true), .long], help: "The PEM private key of -tls-cert.")
    var tlsKey: String?

    @Flag(name: [.customLong("tls-low-memory", withSingleDash: true), .long],
          help: "TLS: free each connection's record buffers while they are empty (about 15 KiB per idle connection instead of 48, a few per cent slower).")
    var tlsLowMemory = false

    @Flag(name: [.customLong("quiet", withSingleDash: true), .long], help: "No stats line.")
    var quiet = false

    @Option(name: [.customLong("stats-interval", withSingleDash: true), .long], help: "Seconds between stats lines.")
    var statsInterval = 5.0

    @Option(name: [.customLong("procs", withSingleDash: true), .long],
            help: "Server processes sharing the port (SO_REUSEPORT), each with -workers loops; past one process's open-file limit. /health and /metrics answer for the process a request reaches.")
    var procs = 1

    @Flag(name: [.customLong("shared-port", withSingleDash: true), .long],
          help: .hidden)
    var sharedPort = false

    @Option(name: [.customLong("parent-pid", withSingleDash: true), .long],
            help: "Shut down as on SIGTERM when this process, which must be the one starting echoserver, ends.")
    var parentPID: Int32?

    /// HOST:PORT, [IPv6]:PORT.
    static func redisAddress(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    func validate() throws {
        guard (0...65535).contains(self.port) else { throw ValidationError("-port \(self.port): expected 0...65535") }
        guard (0...1024).contains(self.workers) else { throw ValidationError("-workers \(self.workers): expected 0...1024") }
        guard (1...(1 << 30)).contains(self.maxMessage) else {
            throw ValidationError("-max-message \(self.maxMessage): expected 1...\(1 << 30) bytes")
        }
        guard self.grace >= 0 && self.grace <= 3600 else { throw ValidationError("-grace \(self.grace): expected 0...3600 seconds") }
        guard self.pingInterval >= 0 && self.pingInterval <= 86400 else {
            throw ValidationError("-ping-interval \(self.pingInterval): expected 0...86400 seconds (0 = off)")
        }
        guard self.idleTimeout >= 0 && self.idleTimeout <= 86400 else {
            throw ValidationError("-idle-timeout \(self.idleTimeout): expected 0...86400 seconds (0 = off)")
        }
        guard !self.host.isEmpty else { throw ValidationError("-host must not be empty") }
        guard (self.tlsCert == nil) == (self.tlsKey == nil) else { throw ValidationError("-tls-cert and -tls-key go together") }
        if self.tlsLowMemory && self.tlsCert == nil { throw ValidationError("-tls-low-memory needs -tls-cert and -tls-key") }
        if let redis = self.redis {
            guard self.pubsub else { throw ValidationError("-redis \(redis): needs -pubsub") }
            guard Self.redisAddress(redis) != nil else { throw ValidationError("-redis \(redis): expected HOST:PORT, PORT in 1...65535") }
        }
        guard (1...256).contains(self.procs) else { throw ValidationError("-procs \(self.procs): expected 1...256") }
        if self.procs > 1 && self.pubsub && self.redis == nil {
            throw ValidationError("-procs \(self.procs) with -pubsub: rooms span processes only through -redis")
        }
        guard self.statsInterval >= 0.1 && self.statsInterval <= 86400 else {
            throw ValidationError("-stats-interval \(self.statsInterval): expected 0.1...86400 seconds")
        }
    }

    /// The arguments a `-procs` set's other processes get: these, without `-procs`, `-port` and
    /// `-parent-pid`, then the port the first process listens on, `-shared-port`, and its pid as their
    /// parent (so that they end with it).
    static func workerArguments(_ arguments: [String], port: Int, parent: Int32) -> [String] {
        Spawn.arguments(arguments, without: ["procs", "port", "parent-pid"]) + ["-port", "\(port)", "-shared-port", "-parent-pid", "\(parent)", "-quiet"]
    }
}
