/// A copy of counters, summed over loops.
public struct WebSocketStatistics: Sendable, Equatable {
    public var open = 0
    public var opened = 0
    public var messagesReceived = 0
    public var messagesSent = 0
    public var errors = 0

    public init(open: Int = 0, opened: Int = 0, messagesReceived: Int = 0, messagesSent: Int = 0, errors: Int = 0) {
        self.open = open
        self.opened = opened
        self.messagesReceived = messagesReceived
        self.messagesSent = messagesSent
        self.errors = errors
    }

    static func + (a: WebSocketStatistics, b: WebSocketStatistics) -> WebSocketStatistics {
        WebSocketStatistics(open: a.open + b.open, opened: a.opened + b.opened,
                            messagesReceived: a.messagesReceived + b.messagesReceived,
                            messagesSent: a.messagesSent + b.messagesSent, errors: a.errors + b.errors)
    }
}
