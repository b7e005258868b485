import ArgumentParser

/// The three load shapes of the Go tool, rooms, and connections.
enum Mode: String, ExpressibleByArgument, CaseIterable, Sendable, Codable {
    /// One message in flight per connection: send, wait for the echo, send again. Measures latency.
    case pingpong
    /// Send continuously (up to a window of messages in flight) while receiving.
    case echo
    /// Send only, as fast as the socket takes it; echoes are read and counted, never awaited.
    case blast
    /// Rooms: client n joins room n mod R (path/R); the first client of each room publishes, keeping
    /// `-window` messages in flight (its own copy coming back answers one), and every member, the
    /// publisher too, must receive every message. Latency is publish to each delivery.
    case fanout
    /// Connections: each client opens a connection (TCP, TLS for wss://, the WebSocket handshake),
    /// closes it with a close handshake and opens the next, until the deadline; latency is each
    /// opening's. With `-hold`, each client opens one connection and holds it, idle, for `-duration`.
    case connect

    /// The message's `type` field, as the Go tool writes it.
    var messageType: String {
        switch self {
        case .pingpong: "ping"
        case .echo: "echo"
        case .blast: "blast"
        case .fanout: "fanout"
        case .connect: "connect"
        }
    }
}
