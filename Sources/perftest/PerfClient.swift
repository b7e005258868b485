import StrandsWS

/// One load-generating connection: a state machine driven by its loop's events. It is its own
/// WebSocket handler, so its state needs no lookup per message. Loop-confined.
final class PerfClient: WebSocketHandler, @unchecked Sendable {  // Safe: used only on its loop.
    /// Strong: a client's close callback may come after its run has handed in its figures.
    let run: LoopRun
    var socket: WebSocket?
    var inFlight = InFlight()
    var nextID: UInt64 = 0
    /// The oldest unanswered message has been counted as timed out.
    var headTimedOut = false
    var sending = true
    var closedByUs = false

    init(run: LoopRun, firstID: UInt64) {
        self.run = run
        self.nextID = firstID
    }

    // MARK: Sending

    /// Sends what the mode allows now; `now` is a monotonic reading taken just before, if one is at hand.
    func pump(now: UInt64 = Clock.nanoseconds()) {
        guard self.sending, let socket = self.socket, socket.isOpen else { return }
        switch self.run.options.mode {
        case .pingpong:
            if self.inFlight.isEmpty { self.sendOne(socket, now: now) }
        case .echo:
            socket.withCork {
                while self.inFlight.count < self.run.options.window && socket.pendingWriteBytes < 64 * 1024 {
                    self.sendOne(socket, now: now)
                }
            }
        case .blast:
            // A burst in one write, then the loop gets back to other connections; the next round resumes us.
            guard socket.pendingWriteBytes < 64 * 1024 else { return }
            socket.withCork {
                for _ in 0..<64 { self.sendOne(socket, now: now) }
            }
        }
    }

    @inline(__always)
    private func sendOne(_ socket: WebSocket, now: UInt64) {
        let id = self.nextID
        self.nextID &+= 1
        let message = self.run.builder.build(id: id, microseconds: Clock.unixMicroseconds(atMonotonic: now))
        guard socket.send(.text, message) else { return }
        if self.run.options.mode != .blast { self.inFlight.push(id: id, at: now) }
        self.run.countSent()
    }

    // MARK: WebSocketHandler

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        let now = Clock.nanoseconds()
        let run = self.run
        run.countReceived()
        if run.options.mode == .blast { return }
        // Match the reply to the oldest unanswered message with this id; older ones were lost.
        let id = MessageBuilder.parseID(message.bytes)
        while let first = self.inFlight.first {
            if let id, first.id < id {
                self.inFlight.removeFirst()  // Never answered: the server dropped it.
                run.stats.skipped += 1
                self.headTimedOut = false
                continue
            }
            if id == nil || first.id == id {
                run.record(latency: now &- first.time, late: self.headTimedOut)
                self.inFlight.removeFirst()
                self.headTimedOut = false
            } else {
                run.stats.unexpected += 1  // A reply to nothing we have in flight.
            }
            break
        }
        if self.sending {
            self.pump(now: now)
        } else if self.inFlight.isEmpty {
            run.clientDrained(self)
        }
    }

    func webSocketDidDrain(_ socket: WebSocket) {
        if self.run.options.mode != .pingpong { self.pump() }
    }

    func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
        self.run.clientClosed(self, code: code, byUs: self.closedByUs)
    }

    /// Called by the loop's sweep: the oldest message has waited longer than the reply timeout.
    func checkTimeout(now: UInt64, timeout: UInt64) {
        guard let first = self.inFlight.first, !self.headTimedOut, now &- first.time > timeout else { return }
        self.headTimedOut = true
        self.run.stats.timeouts += 1
        // In pingpong the connection would otherwise wait forever: move on with the next message,
        // keeping the old one in flight in case its reply is only late.
        if self.run.options.mode == .pingpong, self.sending, let socket = self.socket, socket.isOpen {
            let id = self.nextID
            self.nextID &+= 1
            let message = self.run.builder.build(id: id, microseconds: Clock.unixMicroseconds(atMonotonic: now))
            if socket.send(.text, message) {
                self.inFlight.push(id: id, at: now)
                self.run.countSent()
            }
        }
    }
}
