import Synchronization

/// Everything a run counts, per loop and then merged. Plain integers, written by one loop.
struct RunStats: Sendable, Codable {
    var requested = 0
    var connected = 0
    var sent = 0
    var received = 0
    /// Replies that came after the reply timeout had already counted them.
    var late = 0
    /// Messages whose reply took longer than the reply timeout (answered late, or never).
    var timeouts = 0
    /// Messages never answered although a later one was: the server dropped them.
    var skipped = 0
    /// Replies that matched nothing sent.
    var unexpected = 0
    /// Messages in flight when sending stopped at the deadline...
    var inFlightAtDeadline = 0
    /// ...and of those, the ones answered during the grace period.
    var answeredInGrace = 0
    /// Sent and never answered, after the grace period (skipped included); fanout: deliveries expected
    /// and not made.
    var lost = 0
    /// fanout: deliveries owed, each message times the members of its room.
    var expected = 0
    /// Sum of recorded latencies, for the mean (the histogram's own mean walks it with an iterator that
    /// hdrhistogram-swift 0.2.0 can crash in).
    var latencySumNanoseconds = 0
    // Errors by cause.
    var refused = 0
    var connectFailed = 0
    var handshakeFailed = 0
    var connectTimedOut = 0
    var tlsFailed = 0
    var closedByServer = 0

    /// Message payload bytes, as the application sees them (before compression).
    var payloadBytesSent = 0
    var payloadBytesReceived = 0
    /// TCP payload bytes of the connections open at the end (handshake and frame headers included,
    /// after compression), from the kernel; `wireCounted` connections told.
    var wireBytesSent = 0
    var wireBytesReceived = 0
    var wireCounted = 0
    /// Connections open at the end that agreed permessage-deflate.
    var compressed = 0
    /// `-rate`: messages due that had not gone out when sending stopped, and the largest backlog seen
    /// (summed over loops): how far the target (or perftest) fell behind the schedule.
    var backlogAtEnd = 0
    var maxBacklog = 0

    var errors: Int { self.refused + self.connectFailed + self.handshakeFailed + self.connectTimedOut + self.tlsFailed + self.closedByServer }

    static func + (a: RunStats, b: RunStats) -> RunStats {
        var c = a
        c.requested += b.requested
        c.connected += b.connected
        c.sent += b.sent
        c.received += b.received
        c.late += b.late
        c.timeouts += b.timeouts
        c.skipped += b.skipped
        c.unexpected += b.unexpected
        c.inFlightAtDeadline += b.inFlightAtDeadline
        c.answeredInGrace += b.answeredInGrace
        c.lost += b.lost
        c.expected += b.expected
        c.latencySumNanoseconds += b.latencySumNanoseconds
        c.refused += b.refused
        c.connectFailed += b.connectFailed
        c.handshakeFailed += b.handshakeFailed
        c.connectTimedOut += b.connectTimedOut
        c.tlsFailed += b.tlsFailed
        c.closedByServer += b.closedByServer
        c.payloadBytesSent += b.payloadBytesSent
        c.payloadBytesReceived += b.payloadBytesReceived
        c.wireBytesSent += b.wireBytesSent
        c.wireBytesReceived += b.wireBytesReceived
        c.wireCounted += b.wireCounted
        c.compressed += b.compressed
        c.backlogAtEnd += b.backlogAtEnd
        c.maxBacklog += b.maxBacklog
        return c
    }
}

/// The counters the live line reads from the main thread while loops write them: single-writer
/// relaxed atomics (a plain load and store each, no locked instruction).
final class LiveCounters: Sendable {
    private let _sent = Atomic<Int>(0)
    private let _received = Atomic<Int>(0)
    private let _connected = Atomic<Int>(0)
    private let _errors = Atomic<Int>(0)

    var sent: Int { self._sent.load(ordering: .relaxed) }
    var received: Int { self._received.load(ordering: .relaxed) }
    var connected: Int { self._connected.load(ordering: .relaxed) }
    var errors: Int { self._errors.load(ordering: .relaxed) }

    @inline(__always) func set(sent: Int) { self._sent.store(sent, ordering: .relaxed) }
    @inline(__always) func set(received: Int) { self._received.store(received, ordering: .relaxed) }
    func set(connected: Int) { self._connected.store(connected, ordering: .relaxed) }
    func set(errors: Int) { self._errors.store(errors, ordering: .relaxed) }
}
