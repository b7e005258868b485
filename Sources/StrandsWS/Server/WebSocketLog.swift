/// Where the library reports what happens to a server or client: connection errors (a refused or
/// failed handshake, a protocol violation, a timeout, a transport error) and lifecycle events
/// (listening, shutting down, a handler that threw). Never per message: a log line costs more than a
/// message does. Off by default; set ``WebSocketConfiguration/log``, or give a swift-log `Logger` with
/// the StrandsLogging module (`configuration.logger = logger`).
public struct WebSocketLog: Sendable {
    /// Severity, as swift-log orders it.
    public enum Level: Int, Sendable, Comparable {
        case trace, debug, info, notice, warning, error, critical

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    /// The least severe level written: below it nothing is built, let alone written.
    public var level: Level
    let write: @Sendable (Level, String, [String: String]) -> Void
    /// What the log was made from (a swift-log `Logger`, say), for whoever made it.
    public let origin: (any Sendable)?

    /// A log that hands each event to `write` (level, message, metadata) when its level is `level` or
    /// more severe. `write` is called on the loop where the event happened: keep it quick.
    public init(level: Level = .info, origin: (any Sendable)? = nil,
                _ write: @escaping @Sendable (_ level: Level, _ message: String, _ metadata: [String: String]) -> Void) {
        self.level = level
        self.origin = origin
        self.write = write
    }

    @inline(__always)
    func callAsFunction(_ level: Level, _ message: @autoclosure () -> String,
                        _ metadata: @autoclosure () -> [String: String] = [:]) {
        if level >= self.level { self.write(level, message(), metadata()) }
    }
}

extension WebSocket {
    /// Counts an error by cause and, when the configuration has a log, reports it with the peer's
    /// address. Peers misbehave; that is the peer's error, not the server's: `info`.
    func noteError(_ cause: ErrorCause, _ detail: @autoclosure () -> String) {
        self.registry.countError(cause)
        guard let log = self.registry.configuration.log else { return }
        log(.info, "connection error: \(detail())", self.logMetadata(["error": "\(cause)"]))
    }

    /// The peer and which side this is, for log events about this connection.
    func logMetadata(_ extra: [String: String] = [:]) -> [String: String] {
        var metadata = extra
        metadata["peer"] = self.tcpRemoteAddress.map { "\($0)" } ?? "?"
        metadata["side"] = self.state.isClient ? "client" : "server"
        return metadata
    }
}
