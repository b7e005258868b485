import StrandsWS

/// One load-generating connection's state. All clients of a loop sit in one array of these, in
/// ``LoopRun``, found by the index their `WebSocket.userData` holds: with thousands of connections a
/// dense array keeps a reply from touching one more cold object per message.
///
/// 40 bytes (fields in this order: `InFlight` is 28 bytes, and the flags fill what it leaves of its
/// last word). The connection itself sits in ``LoopRun``'s `sockets` at the same index: a reply
/// arrives with it, so the hot path never reads it from there.
struct ClientState {
    var nextID: UInt64
    var inFlight = InFlight()
    /// The oldest unanswered message has been counted as timed out.
    var headTimedOut = false
    var sending = true
    var closedByUs = false

    init(firstID: UInt64) { self.nextID = firstID }
}

/// The clients of one loop, in memory of their own. Its capacity (the loop's share of the clients) is
/// known when the run starts, so it never grows, and an access is a plain address computation: no
/// copy-on-write uniqueness check, as an array's mutation makes, and a bounds check only in debug builds.
struct ClientTable {
    private let base: UnsafeMutablePointer<ClientState>
    private(set) var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.base = .allocate(capacity: max(capacity, 1))
        self.capacity = capacity
    }

    var indices: Range<Int> { 0..<self.count }

    subscript(slot: Int) -> ClientState {
        @inline(__always) unsafeAddress {
            assert(slot >= 0 && slot < self.count, "client \(slot) of \(self.count)")
            return UnsafePointer(self.base + slot)
        }
        @inline(__always) nonmutating unsafeMutableAddress {
            assert(slot >= 0 && slot < self.count, "client \(slot) of \(self.count)")
            return self.base + slot
        }
    }

    mutating func append(_ client: ClientState) {
        precondition(self.count < self.capacity, "more clients than the loop's share")
        (self.base + self.count).initialize(to: client)
        self.count += 1
    }

    /// Frees the table (not the clients' in-flight rings: ``InFlight/free()`` each first). A freed table
    /// takes no more clients; the next `append` stops the program instead of writing freed memory.
    mutating func free() {
        self.base.deinitialize(count: self.count)
        self.base.deallocate()
        self.count = 0
        self.capacity = 0
    }
}

/// The client side of every connection of a loop: the state machine of each mode, driven by the loop's
/// events. `LoopRun` is the one handler of all its connections.
extension LoopRun: WebSocketHandler {
    // MARK: Sending

    /// Sends what the mode allows now on client `slot`, whose connection is `socket`; `now` is a monotonic
    /// reading taken just before.
    func pump(_ slot: Int, _ socket: WebSocket, now: UInt64 = Clock.nanoseconds()) {
        guard self.clients[slot].sending, socket.isOpen else { return }
        switch self.options.mode {
        case .pingpong:
            if self.clients[slot].inFlight.isEmpty { self.sendOne(slot, socket, now: now) }
        case .fanout:
            if self.publishes(slot) { self.publish(room: self.room(slot)) }
        case .echo:
            // At a -rate, the pacer sends (see Pacer.swift).
            if self.paced {
                if self.paceBehind { self.pace() }
                return
            }
            // Corked frames are not yet the stream's pending bytes, so one look at them does for the burst.
            guard socket.pendingWriteBytes < 64 * 1024 else { return }
            socket.withCork {
                while self.clients[slot].inFlight.count < self.options.window {
                    guard self.sendOne(slot, socket, now: now) else { break }
                }
            }
        case .blast:
            // A burst in one write, then the loop gets back to other connections; the next round resumes us.
            guard socket.pendingWriteBytes < 64 * 1024 else { return }
            socket.withCork {
                for _ in 0..<64 { self.sendOne(slot, socket, now: now) }
            }
        case .connect:
            return  // Connections only.
        }
    }

    /// Sends client `slot`'s next message; `false` when the connection took nothing (it is not open).
    @inline(__always) @discardableResult
    func sendOne(_ slot: Int, _ socket: WebSocket, now: UInt64, intended: UInt64? = nil) -> Bool {
        let id = self.clients[slot].nextID
        let message = self.builder.build(id: id, microseconds: Clock.unixMicroseconds(atMonotonic: now, wallOffset: self.wallOffset))
        guard socket.send(.text, message).isAccepted else { return false }
        self.clients[slot].nextID &+= self.idStride
        if self.options.mode == .fanout {
            self.publishedByRoom[self.room(slot)] += 1
        } else if let intended {
            // -rate: the latency counts from when the schedule meant it to leave.
            self.clients[slot].inFlight.push(at: intended)
            self.sentAt[slot].push(at: now)
        } else if self.options.mode != .blast {
            self.clients[slot].inFlight.push(at: now)
        }
        self.countSent(bytes: message.count)
        return true
    }

    /// The id of client `slot`'s oldest message in flight: its messages in flight are the last
    /// `count` it sent, ids `idStride` apart (see ``InFlight``).
    @inline(__always)
    func headID(_ slot: Int) -> UInt64 {
        self.clients[slot].nextID &- UInt64(self.clients[slot].inFlight.count) &* self.idStride
    }

    // MARK: WebSocketHandler

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        // One clock reading per read: a reply later in a burst is stamped when its read began to be
        // handled, at most one read buffer's handling (tens of microseconds) early.
        if self.readTime == 0 { self.readTime = Clock.nanoseconds() }
        let now = self.readTime
        let slot = Int(socket.userData)
        self.countReceived(bytes: message.bytes.count)
        if self.options.mode == .blast { return }
        if self.options.mode == .fanout {
            self.delivered(slot, socket, message.bytes, now: now)
            return
        }
        // Match the reply to the oldest unanswered message with this id; older ones were lost.
        let id = self.builder.replyID(message.bytes)
        while let firstTime = self.clients[slot].inFlight.firstTime {
            let firstID = self.headID(slot)
            if let id, firstID < id {
                self.clients[slot].inFlight.removeFirst()  // Never answered: the server dropped it.
                if self.paced { self.sentAt[slot].removeFirst() }
                self.stats.skipped += 1
                self.clients[slot].headTimedOut = false
                continue
            }
            if id == nil || firstID == id {
                self.record(latency: now &- firstTime, late: self.clients[slot].headTimedOut)
                self.clients[slot].inFlight.removeFirst()
                if self.paced, let sent = self.sentAt[slot].firstTime {
                    self.serviceTimes.record(now &- sent)
                    self.sentAt[slot].removeFirst()
                }
                self.clients[slot].headTimedOut = false
            } else {
                self.stats.unexpected += 1  // A reply to nothing we have in flight.
            }
            break
        }
        if self.clients[slot].sending {
            // Echo refills its window once per read, with its group (see `webSocketDidFinishRead`), as
            // many messages at a time as the replies made room for.
            if self.options.mode == .pingpong { self.sendSoon(slot, socket) }
        } else if self.clients[slot].inFlight.isEmpty {
            self.clientDrained(slot)
        }
    }

    func webSocketDidFinishRead(_ socket: WebSocket) {
        // A read with replies in it (it set `readTime`): echo refills this client's window with the
        // next group of clients that had replies, or at the end of the loop turn (`afterPoll`), one
        // write per client, the group's writes back to back.
        if self.options.mode == .echo && self.readTime != 0 {
            self.due.append(DueClient(slot: Int(socket.userData), socket: .passUnretained(socket)))
            if self.due.count >= Self.echoBatch { self.sendDue() }
        }
        self.readTime = 0
    }

    func webSocketDidDrain(_ socket: WebSocket) {
        if self.options.mode != .pingpong { self.pump(Int(socket.userData), socket) }
    }

    func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
        self.clientClosed(Int(socket.userData))
    }

    /// fanout: a delivery to member `slot`. Its latency runs from the message's own timestamp (the
    /// publisher is in this process, on the same clock). The delivery that completes a message's worth
    /// for its room (the room's count reaches a multiple of its members) lets the publisher go on.
    private func delivered(_ slot: Int, _ socket: WebSocket, _ bytes: UnsafeRawBufferPointer, now: UInt64) {
        if let sent = MessageBuilder.timestampMicroseconds(bytes) {
            let at = Clock.unixMicroseconds(atMonotonic: now, wallOffset: self.wallOffset)
            self.record(latency: at > sent ? (at - sent) * 1000 : 0, late: false)
        }
        guard let fanout = self.fanout else { return }
        let room = self.room(slot)
        let members = fanout.members[room]
        let count = fanout.delivered[room].value.add(1, ordering: .relaxed).newValue
        guard members > 0, count % members == 0 else { return }
        let publisher = fanout.runs[room % fanout.runs.count]
        if publisher === self {
            self.publish(room: room)
        } else {
            publisher.loop.execute { publisher.publish(room: room) }
        }
    }

    /// fanout: the room's publisher sends while fewer than `-window` messages are not yet delivered to
    /// every member (or given up on after the reply timeout).
    func publish(room: Int) {
        guard let fanout = self.fanout, self.publishing, let slot = self.publisherSlots[room],
              self.clients[slot].sending, let socket = self.sockets[slot], socket.isOpen else { return }
        let members = fanout.members[room]
        let allowed = (self.options.window - 1) * members
        let now = Clock.nanoseconds()
        socket.withCork {
            while (self.publishedByRoom[room] - self.forgiven[room]) * members - fanout.delivered[room].value.load(ordering: .relaxed) <= allowed {
                guard self.sendOne(slot, socket, now: now) else { break }
                self.lastPublish[room] = now
            }
        }
    }

    /// fanout, from the sweep: a publisher whose messages have not all arrived within the reply timeout
    /// gives up on the oldest one and goes on, as pingpong does.
    func checkPublisher(room: Int, now: UInt64, timeout: UInt64) {
        guard let fanout = self.fanout, self.publishing, now &- self.lastPublish[room] > timeout else { return }
        let members = fanout.members[room]
        let owed = (self.publishedByRoom[room] - self.forgiven[room]) * members - fanout.delivered[room].value.load(ordering: .relaxed)
        guard owed > (self.options.window - 1) * members else { return }
        self.stats.timeouts += 1
        self.forgiven[room] += 1
        self.publish(room: room)
    }

    /// Called by the loop's sweep: the oldest message of `slot` has waited longer than the reply timeout.
    func checkTimeout(_ slot: Int, now: UInt64, timeout: UInt64) {
        guard let firstTime = self.clients[slot].inFlight.firstTime, !self.clients[slot].headTimedOut,
              now &- firstTime > timeout
        else { return }
        self.clients[slot].headTimedOut = true
        self.stats.timeouts += 1
        // In pingpong the connection would otherwise wait forever: move on with the next message,
        // keeping the old one in flight in case its reply is only late.
        if self.options.mode == .pingpong, self.clients[slot].sending, let socket = self.sockets[slot], socket.isOpen {
            self.sendOne(slot, socket, now: now)
        }
    }
}
