import StrandsWS

/// `-rate N`: open-loop sending at a fixed rate, the loop's share of it.
///
/// The schedule counts in milliseconds: by the end of millisecond j since the start, ⌊(j + 1) ×
/// perMillisecond⌋ messages are due. A 1 ms timer (and every loop turn while a backlog waits) sends
/// what is due, spread evenly over the connected clients, each client's share in one write.
///
/// A message's latency counts from when it fell due: the time of the pacer's turn that first found it
/// due. When a client's window is full or its socket backs up, what is due waits as a backlog and keeps
/// that time, so the wait is in its latency (coordinated omission corrected, as wrk2 does). Only the
/// pacer's own lateness (libuv's timers keep whole milliseconds, on a coarse clock) is not, since it is
/// perftest's and not the target's; it shows as a rate not held if perftest falls behind. The service
/// time, from when each message really left, is kept alongside.
struct Pacer {
    let start: UInt64
    let perMillisecond: Double
    /// Messages sent so far (the next one's number in the schedule), and due so far.
    var scheduled = 0
    var dueCount = 0
    /// When the messages fell due: segment i holds those numbered below `upTo`, due since `time`.
    private var segments: [(upTo: Int, time: UInt64)] = []
    private var head = 0
    /// The next client to get a share, round robin.
    var cursor = 0
    /// The largest backlog left at a turn's end, and the last one.
    var maxBacklog = 0
    var backlog = 0

    /// Whether the times things fell due are kept (`-rate`'s latencies count from them; connection
    /// openings need only the counts).
    let keepsTimes: Bool

    init(start: UInt64, perSecond: Double, keepsTimes: Bool = true) {
        self.start = start
        self.perMillisecond = perSecond / 1000
        self.keepsTimes = keepsTimes
    }

    /// Brings the count of messages due up to `now` (and lets go of the times of those already sent).
    mutating func advance(to now: UInt64) {
        while self.head < self.segments.count && self.segments[self.head].upTo <= self.scheduled { self.head += 1 }
        if self.head > 64 && self.head * 2 > self.segments.count {
            self.segments.removeFirst(self.head)
            self.head = 0
        }
        guard now >= self.start else { return }
        let slot = (now - self.start) / 1_000_000
        let due = Int((Double(slot + 1) * self.perMillisecond).rounded(.down))
        guard due > self.dueCount else { return }
        self.dueCount = due
        if self.keepsTimes { self.segments.append((due, now)) }
    }

    /// When the next message to send fell due.
    mutating func dueTime() -> UInt64 {
        while self.segments[self.head].upTo <= self.scheduled { self.head += 1 }
        return self.segments[self.head].time
    }
}

extension LoopRun {
    /// Starts this loop's share of `-rate`, now.
    func startPacing() {
        guard let rate = self.options.rate, self.sending else { return }
        self.startPacer(rate: rate, keepsTimes: true) { $0.pace() }
    }

    /// This loop's share of `rate` from now, `turn` run every millisecond and once at once.
    private func startPacer(rate: Double, keepsTimes: Bool, turn: @escaping (LoopRun) -> Void) {
        let share = Double(self.clients.count) / Double(max(self.options.clients, 1))
        self.pacer = Pacer(start: Clock.nanoseconds(), perSecond: rate * share, keepsTimes: keepsTimes)
        self.pacerTimer = self.loop.scheduleTimer(after: .milliseconds(1), repeating: .milliseconds(1)) { [unowned self] in
            turn(self)
        }
        turn(self)
    }

    /// Sends what is due: each connected client with room its share, in one write.
    func pace() {
        guard self.sending, var pacer = self.pacer else { return }
        let now = Clock.nanoseconds()
        pacer.advance(to: now)
        let due = pacer.dueCount
        let count = self.clients.count
        var blocked = 0  // Clients passed over in a row: all of them means nobody has room.
        while pacer.scheduled < due && blocked < count {
            let slot = pacer.cursor
            pacer.cursor = (pacer.cursor + 1) % count
            let connected = self.connectedCount
            let share = max(1, (due - pacer.scheduled + connected - 1) / max(connected, 1))
            guard self.clients[slot].sending, let socket = self.sockets[slot], socket.isOpen,
                  socket.pendingWriteBytes < 64 * 1024, self.clients[slot].inFlight.count < self.options.window
            else {
                blocked += 1
                continue
            }
            blocked = 0
            socket.withCork {
                var sent = 0
                while sent < share && pacer.scheduled < due && self.clients[slot].inFlight.count < self.options.window {
                    guard self.sendOne(slot, socket, now: now, intended: pacer.dueTime()) else { break }
                    pacer.scheduled += 1
                    sent += 1
                }
            }
        }
        pacer.backlog = due - pacer.scheduled
        pacer.maxBacklog = max(pacer.maxBacklog, pacer.backlog)
        self.pacer = pacer
        self.paceBehind = pacer.scheduled < due
    }

    /// Starts this loop's share of `-connect-rate`, now: each turn opens what is due on free slots
    /// (a slot is free until its connection opens, and again once it has closed or failed).
    func startConnectPacing() {
        guard let rate = self.options.connectRate else { return }
        self.startPacer(rate: rate, keepsTimes: false) { $0.paceConnects() }
    }

    func paceConnects() {
        guard self.sending, var pacer = self.pacer else { return }
        pacer.advance(to: Clock.nanoseconds())
        while pacer.scheduled < pacer.dueCount, let slot = self.freeSlots.popLast() {
            pacer.scheduled += 1
            self.open(slot, index: Int(self.clients[slot].nextID))
        }
        // Held connections: once every slot is open or opening there is nothing left to open, not a backlog.
        pacer.backlog = self.options.hold && self.freeSlots.isEmpty ? 0 : pacer.dueCount - pacer.scheduled
        pacer.maxBacklog = max(pacer.maxBacklog, pacer.backlog)
        self.pacer = pacer
    }

    /// Sending stops: the backlog left is counted.
    func stopPacing() {
        self.pacerTimer?.cancel()
        self.pacerTimer = nil
        guard let pacer = self.pacer else { return }
        self.stats.backlogAtEnd = pacer.backlog
        self.stats.maxBacklog = pacer.maxBacklog
    }
}
