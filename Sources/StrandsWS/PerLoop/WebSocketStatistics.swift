/// A copy of counters, summed over loops.
public struct WebSocketStatistics: Sendable, Equatable {
    public var open = 0
    public var opened = 0
    public var messagesReceived = 0
    public var messagesSent = 0
    /// Connections that ended in an error, all causes (``errorsByCause`` splits them).
    public var errors = 0
    public var errorsByCause = WebSocketErrorCounts()
    /// TCP bytes read and handed to the kernel on the loops (handshakes, frames, close frames: what
    /// crossed the sockets, after compression), every connection of those loops counted.
    public var bytesReceived = 0
    public var bytesSent = 0

    public init(open: Int = 0, opened: Int = 0, messagesReceived: Int = 0, messagesSent: Int = 0, errors: Int = 0) {
        self.open = open
        self.opened = opened
        self.messagesReceived = messagesReceived
        self.messagesSent = messagesSent
        self.errors = errors
    }

    static func + (a: WebSocketStatistics, b: WebSocketStatistics) -> WebSocketStatistics {
        var sum = WebSocketStatistics(open: a.open + b.open, opened: a.opened + b.opened,
                                      messagesReceived: a.messagesReceived + b.messagesReceived,
                                      messagesSent: a.messagesSent + b.messagesSent, errors: a.errors + b.errors)
        sum.errorsByCause = a.errorsByCause + b.errorsByCause
        sum.bytesReceived = a.bytesReceived + b.bytesReceived
        sum.bytesSent = a.bytesSent + b.bytesSent
        return sum
    }
}

/// Why connections ended in error.
public struct WebSocketErrorCounts: Sendable, Equatable {
    /// Refused before or at the upgrade (a bad request, a rejected upgrade, a failed client handshake).
    public var handshake = 0
    /// The peer broke RFC 6455 or RFC 7692 (1002, 1007), or could not be served (1011).
    public var `protocol` = 0
    /// A message over the size limit (1009).
    public var tooBig = 0
    /// A peer that did not read what it was sent, past the send cap (1008).
    public var sendCap = 0
    /// A handshake that did not finish in time.
    public var timeout = 0
    /// TCP ended without a close frame, or failed (1006).
    public var transport = 0

    public init() {}

    public var total: Int { self.handshake + self.protocol + self.tooBig + self.sendCap + self.timeout + self.transport }

    /// Each cause with its Prometheus label value.
    public var labelled: [(cause: String, count: Int)] {
        [("handshake", self.handshake), ("protocol", self.protocol), ("too_big", self.tooBig),
         ("send_cap", self.sendCap), ("timeout", self.timeout), ("transport", self.transport)]
    }

    static func + (a: WebSocketErrorCounts, b: WebSocketErrorCounts) -> WebSocketErrorCounts {
        var sum = WebSocketErrorCounts()
        sum.handshake = a.handshake + b.handshake
        sum.protocol = a.protocol + b.protocol
        sum.tooBig = a.tooBig + b.tooBig
        sum.sendCap = a.sendCap + b.sendCap
        sum.timeout = a.timeout + b.timeout
        sum.transport = a.transport + b.transport
        return sum
    }
}

/// Which of ``WebSocketErrorCounts`` an error goes to.
enum ErrorCause {
    case handshake, `protocol`, tooBig, sendCap, timeout, transport
}
