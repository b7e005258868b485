import Synchronization
import StrandsCLI
import StrandsTLS
import Histogram
import StrandsWS

/// The options a run needs on every loop.
struct RunOptions: Sendable {
    var url: String
    var clients: Int
    var duration: Double
    var mode: Mode
    var payload: Int
    var rampup: Double
    var timeout: Double
    var grace: Double
    var window: Int
    /// A local server process whose CPU is measured over the same window as perftest's own.
    var serverPID: Int32?
    var compression: CompressionChoice = .off
    var data: DataKind = .x
    /// fanout: client n joins room n mod `rooms` (at `url/ROOM`); clients 0..<rooms publish.
    var rooms = 1
    /// wss: what the client trusts.
    var trust: TLSContext.Trust = .system
    /// connect mode: hold the connections instead of closing and reopening them.
    var hold = false
    /// echo: messages per second in all, open loop (nil: each client keeps `window` in flight).
    var rate: Double?
    /// connect: connections opened per second in all, open loop (nil: each client reopens at once).
    var connectRate: Double?
    /// Loopback targets with more clients than one source address has ports for: client g (counting
    /// every process's, from `clientOffset`) connects from 127.0.0.(1 + g / 25,000).
    var spreadSources = false
    var clientOffset = 0
}

/// One loop's share of a run: its clients, its histogram, its counts. Loop-confined; the runner talks to
/// it through `execute` and reads `live` from any thread.
final class LoopRun: @unchecked Sendable {  // Safe: all but `live` is touched on `loop` only.
    let loop: Loop
    let options: RunOptions
    @exclusivity(unchecked) var builder: MessageBuilder
    /// Client `i` sends ids i, i + clients, i + 2 × clients…: unique in the run, and short to write.
    let idStride: UInt64
    let live = LiveCounters()
    /// ``Clock/wallOffset``, read once (see ``Clock/unixMicroseconds(atMonotonic:wallOffset:)``).
    let wallOffset = Clock.wallOffset
    // The per-message state is touched only by this loop, never in overlapping accesses: the dynamic
    // exclusivity checks Swift would make on each access (about 2 % of perftest's CPU) buy nothing here.
    @exclusivity(unchecked) var stats = RunStats()
    /// Latencies, moved into an HDR histogram when the run ends (see ``LatencyCounts``).
    @exclusivity(unchecked) var latencies = LatencyCounts(highestTrackableValue: LoopRun.highestLatency)
    /// `-rate`: the schedule, its timer, whether a backlog waits, and each message's real send time
    /// (its latency counts from its intended one) with the service times they give.
    @exclusivity(unchecked) var pacer: Pacer?
    /// `options.rate != nil`, as a plain flag for the per-message paths.
    let paced: Bool
    var pacerTimer: LoopTimer?
    /// `-connect-rate`: slots with no connection open or opening, for the pacer to open.
    var freeSlots: [Int] = []
    @exclusivity(unchecked) var paceBehind = false
    @exclusivity(unchecked) var sentAt: [InFlight] = []
    @exclusivity(unchecked) var serviceTimes = LatencyCounts(highestTrackableValue: LoopRun.highestLatency)
    /// Every client of this loop, connected or not; a socket's `userData` is its index here.
    @exclusivity(unchecked) var clients = ClientTable(capacity: 0)
    /// Each client's connection once it is open, at the same index.
    @exclusivity(unchecked) var sockets: [WebSocket?] = []
    @exclusivity(unchecked) var sending = true
    /// The clock reading for the read being handled (0: none yet; `webSocketDidFinishRead` clears it):
    /// replies that arrive together share one reading instead of paying for one each.
    @exclusivity(unchecked) var readTime: UInt64 = 0
    /// Clients whose reply came in and whose next message (pingpong) or window refill (echo) has not gone
    /// out yet. They are sent in groups (``sendBatch``, ``echoBatch``, or what is left when the loop's
    /// I/O callbacks are done), so the server finds several requests per wake-up instead of being woken
    /// for each; while a group of replies is handled its connections' state stays in cache for the sends.
    @exclusivity(unchecked) var due: [DueClient] = []
    static let sendBatch = 16
    /// Echo's refills go out 64 clients at a time (or at the end of the turn), each in one write
    /// through a lent cork: the server then wakes once per group, not once per client, and the group's
    /// clients are still in cache (see Docs/PerfTest.md for the measurements behind 64).
    static let echoBatch = 64
    var afterPoll: LoopCheck?
    var sweep: LoopTimer?
    var ramp: LoopTimer?
    var pending: [Int] = []
    /// Called (on this loop) once no client has a message in flight after sending stopped.
    var drained: (() -> Void)?
    var undrained = 0
    /// fanout: messages this loop's publishers sent, and members connected here when publishing
    /// started, by room. Expected deliveries = Σ rooms published × members.
    var publishedByRoom: [Int] = []
    var membersByRoom: [Int] = []
    var publishing = false
    var slotRooms: [Int32] = []
    var slotPublishes: [Bool] = []
    /// fanout: what every loop shares (deliveries per room); set before the run starts.
    var fanout: FanoutShared?
    /// fanout, by room: this loop's publisher's slot, messages given up on, the time of the last send.
    var publisherSlots: [Int: Int] = [:]
    var forgiven: [Int] = []
    var lastPublish: [UInt64] = []
    /// connect: when each client's current opening began, and whether it has opened one yet.
    var openingSince: [UInt64] = []
    var openedOnce: [Bool] = []
    /// connect: the configuration each reopening uses.
    var configuration = WebSocketConfiguration()

    init(loop: Loop, options: RunOptions) {
        self.loop = loop
        self.options = options
        self.builder = MessageBuilder(type: options.mode.messageType, payload: options.payload, data: options.data)
        self.idStride = UInt64(max(options.clients, 1))
        self.paced = options.rate != nil
        if options.mode == .fanout {
            self.publishedByRoom = Array(repeating: 0, count: options.rooms)
            self.membersByRoom = Array(repeating: 0, count: options.rooms)
            self.forgiven = Array(repeating: 0, count: options.rooms)
            self.lastPublish = Array(repeating: 0, count: options.rooms)
        }
    }

    /// fanout: client `slot`'s room, and whether it publishes there (the room's first client).
    @inline(__always) func room(_ slot: Int) -> Int { Int(self.slotRooms[slot]) }
    @inline(__always) func publishes(_ slot: Int) -> Bool { self.slotPublishes[slot] }

    /// fanout: every client has connected (or failed): this loop's members by room.
    func countMembers() -> [Int] {
        for slot in self.clients.indices where self.sockets[slot] != nil { self.membersByRoom[self.room(slot)] += 1 }
        return self.membersByRoom
    }

    /// fanout: with every loop's members counted (`fanout.members`), the publishers start.
    func startPublishing() {
        guard self.options.mode == .fanout, self.sending else { return }
        self.publishing = true
        let now = Clock.nanoseconds()
        for slot in self.clients.indices where self.publishes(slot) && self.sockets[slot] != nil {
            self.publisherSlots[self.room(slot)] = slot
            self.lastPublish[self.room(slot)] = now
        }
        for room in self.publisherSlots.keys { self.publish(room: room) }
    }

    deinit {
        self.builder.free()
        for slot in self.clients.indices { self.clients[slot].inFlight.free() }
        self.clients.free()
        self.latencies.free()
        self.serviceTimes.free()
        for index in self.sentAt.indices { self.sentAt[index].free() }
    }

    /// Connections per loopback source address when they are spread (about 28,000 ephemeral ports each).
    static let clientsPerSource = 25_000

    /// The longest latency a histogram holds: 60 s (the reply timeout is far shorter).
    static let highestLatency: UInt64 = 60_000_000_000

    /// An empty histogram of the run's layout: 1 ns to ``highestLatency``, three significant digits.
    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(highestTrackableValue: Self.highestLatency, numberOfSignificantValueDigits: .three)
    }

    @inline(__always) func countSent(bytes: Int) {
        self.stats.sent += 1
        self.stats.payloadBytesSent &+= bytes
        self.live.set(sent: self.stats.sent)
    }

    @inline(__always) func countReceived(bytes: Int) {
        self.stats.received += 1
        self.stats.payloadBytesReceived &+= bytes
        self.live.set(received: self.stats.received)
    }

    @inline(__always) func record(latency: UInt64, late: Bool) {
        self.latencies.record(latency)
        self.stats.latencySumNanoseconds &+= Int(truncatingIfNeeded: latency)
        if late { self.stats.late += 1 }
        if !self.sending { self.stats.answeredInGrace += 1 }
    }

    /// Connects the clients with these global indices, each at its ramp-up offset.
    func start(indices: [Int], configuration: WebSocketConfiguration) {
        self.stats.requested = indices.count
        self.configuration = configuration
        self.clients.free()
        self.clients = ClientTable(capacity: indices.count)
        let interval = self.options.clients > 1 ? self.options.rampup / Double(self.options.clients) : 0
        if self.options.connectRate != nil {
            // -connect-rate: the slots wait, free, for the pacer to open them.
            for index in indices { self.addClient(index) }
            self.freeSlots = Array(self.clients.indices.reversed())
            self.startConnectPacing()
        } else if interval <= 0 {
            for index in indices { self.connect(index, configuration: configuration) }
        } else {
            // One timer per loop walks the schedule; never one per client.
            let start = self.loop.now
            self.pending = indices
            var next = 0
            self.ramp = self.loop.scheduleTimer(after: .zero, repeating: .milliseconds(1)) { [unowned self] in
                let elapsed = Double(self.loop.now - start) / 1000
                while next < self.pending.count && Double(self.pending[next]) * interval <= elapsed {
                    self.connect(self.pending[next], configuration: configuration)
                    next += 1
                }
                if next == self.pending.count {
                    self.ramp?.cancel()
                    self.ramp = nil
                }
            }
        }
        let timeout = UInt64(self.options.timeout * 1e9)
        // Reply timeouts need no more precision than a tenth of themselves; walking thousands of clients
        // touches their memory, so the sweep is as rare as that allows (10 to 250 ms).
        let tick = Duration.milliseconds(Int64(min(max(self.options.timeout * 100, 10), 250)))
        self.sweep = self.loop.scheduleTimer(after: tick, repeating: tick) { [unowned self] in
            let now = Clock.nanoseconds()
            for slot in self.clients.indices { self.checkTimeout(slot, now: now, timeout: timeout) }
            for room in self.publisherSlots.keys { self.checkPublisher(room: room, now: now, timeout: timeout) }
        }
        if self.options.mode == .blast { self.blastRound() }
        if self.options.mode != .blast && self.options.mode != .connect {
            // A full group goes out at once, so the list never holds more than one.
            self.due.reserveCapacity(self.options.mode == .pingpong ? Self.sendBatch : Self.echoBatch)
            self.afterPoll = self.loop.afterEachPoll { [unowned self] in
                if !self.due.isEmpty { self.sendDue() }
                if self.paceBehind { self.pace() }
            }
        }
    }

    private func connect(_ index: Int, configuration: WebSocketConfiguration) {
        guard self.sending else { return }
        self.open(self.addClient(index), index: index)
    }

    /// Client `index`'s state, in the next slot; returns the slot.
    @discardableResult
    private func addClient(_ index: Int) -> Int {
        let slot = self.clients.count
        self.clients.append(ClientState(firstID: UInt64(index)))
        self.sockets.append(nil)
        if self.paced { self.sentAt.append(InFlight()) }
        if self.options.mode == .fanout {
            self.slotRooms.append(Int32(index % self.options.rooms))
            self.slotPublishes.append(index < self.options.rooms)
        }
        if self.options.mode == .connect {
            self.openingSince.append(0)
            self.openedOnce.append(false)
        }
        return slot
    }

    /// Opens client `slot`'s connection (again, in connect mode).
    func open(_ slot: Int, index: Int) {
        let url = self.options.mode == .fanout ? "\(self.options.url)/\(index % self.options.rooms)" : self.options.url
        let connecting = self.options.mode == .connect
        if connecting {
            self.openingSince[slot] = Clock.nanoseconds()
            self.countSent(bytes: 0)
        }
        let source = self.options.spreadSources ? "127.0.0.\(1 + (self.options.clientOffset + index) / LoopRun.clientsPerSource)" : nil
        WebSocketClient.connect(to: url, on: self.loop, configuration: self.configuration, localAddress: source, handler: self) { result in
            switch result {
            case .success(let socket):
                socket.userData = UInt64(slot)
                self.sockets[slot] = socket
                if connecting {
                    self.opened(slot, socket)
                    return
                }
                self.stats.connected += 1
                self.live.set(connected: self.stats.connected)
                if !self.sending {
                    self.clients[slot].sending = false
                } else if self.options.mode != .fanout {
                    self.pump(slot, socket)
                }
            case .failure(let error):
                switch error.kind {
                case .connectFailed where error.transportError == .connectionRefused: self.stats.refused += 1
                case .connectFailed, .invalidURL, .closed, .sendRefused: self.stats.connectFailed += 1
                case .tlsFailed: self.stats.tlsFailed += 1
                case .handshakeFailed: self.stats.handshakeFailed += 1
                case .timedOut: self.stats.connectTimedOut += 1
                }
                self.live.set(errors: self.stats.errors)
                self.firstError = self.firstError ?? error.description
                if connecting && self.options.connectRate != nil {
                    self.freeSlots.append(slot)  // The pacer opens it again, in its turn.
                } else if connecting && self.sending && !self.options.hold {
                    // The next try after a pause: a refusing server is not met with a busy loop.
                    self.loop.scheduleTimer(after: .milliseconds(10)) { [weak self] in
                        guard let self, self.sending else { return }
                        self.open(slot, index: index)
                    }
                } else {
                    self.clients[slot].sending = false
                }
            }
        }
    }

    /// connect: client `slot`'s connection is open: its opening's latency is counted, and it is closed
    /// at once (reopened when the close completes) unless connections are held.
    private func opened(_ slot: Int, _ socket: WebSocket) {
        self.record(latency: Clock.nanoseconds() &- self.openingSince[slot], late: false)
        self.countReceived(bytes: 0)
        if !self.openedOnce[slot] {
            self.openedOnce[slot] = true
            self.stats.connected += 1
            self.live.set(connected: self.stats.connected)
        }
        if !self.sending || !self.options.hold {
            self.clients[slot].closedByUs = true
            socket.close(code: .normalClosure)
        }
    }

    /// A client whose next pingpong message, or echo window refill, is due, with its connection.
    ///
    /// Unretained: a group is sent within the loop turn that filled it (at the latest by `afterPoll`,
    /// a check handle), and a connection lives at least until the close callbacks at the end of that
    /// turn (`sockets` holds it until then). So no retain and release, each touching the connection's
    /// reference count, per message.
    struct DueClient {
        let slot: Int
        let socket: Unmanaged<WebSocket>
    }

    /// Queues client `slot`'s next message; a full group goes out at once.
    @inline(__always)
    func sendSoon(_ slot: Int, _ socket: WebSocket) {
        self.due.append(DueClient(slot: slot, socket: .passUnretained(socket)))
        if self.due.count >= Self.sendBatch { self.sendDue() }
    }

    /// Sends the queued clients' next messages, each stamped with the clock as it goes out.
    func sendDue() {
        for client in self.due {
            client.socket._withUnsafeGuaranteedRef { self.pump(client.slot, $0) }
        }
        self.due.removeAll(keepingCapacity: true)
    }

    /// The first connection error, to show the user what went wrong.
    var firstError: String?

    /// Blast: a burst from every client, then the loop handles I/O and comes back here through its own
    /// task queue (one task per round over all clients, not per message), until sending stops.
    private func blastRound() {
        guard self.sending else { return }
        let now = Clock.nanoseconds()
        for slot in self.clients.indices {
            if let socket = self.sockets[slot] { self.pump(slot, socket, now: now) }
        }
        self.loop.execute { [self] in self.blastRound() }
    }

    /// Stops sending; `drained` runs once every client's messages are answered (maybe at once).
    func stopSending(drained: @escaping () -> Void) {
        self.stopPacing()
        self.sending = false
        self.ramp?.cancel()
        self.ramp = nil
        self.drained = drained
        self.undrained = 0
        for slot in self.clients.indices {
            self.clients[slot].sending = false
            self.stats.inFlightAtDeadline += self.clients[slot].inFlight.count
            if !self.clients[slot].inFlight.isEmpty { self.undrained += 1 }
        }
        if self.undrained == 0 { self.finishDrain() }
    }

    func clientDrained(_ slot: Int) {
        guard self.drained != nil, self.undrained > 0 else { return }
        self.undrained -= 1
        if self.undrained == 0 { self.finishDrain() }
    }

    private func finishDrain() {
        let drained = self.drained
        self.drained = nil
        drained?()
    }

    func clientClosed(_ slot: Int) {
        if self.options.mode == .connect && self.sending && !self.options.hold {
            // Closed after opening: open the next one (a close the server made is an error).
            if !self.clients[slot].closedByUs {
                self.stats.closedByServer += 1
                self.live.set(errors: self.stats.errors)
            }
            self.clients[slot].closedByUs = false
            self.sockets[slot] = nil
            if self.options.connectRate != nil {
                self.freeSlots.append(slot)
            } else {
                self.open(slot, index: Int(self.clients[slot].nextID))
            }
            return
        }
        if !self.clients[slot].closedByUs {
            self.stats.closedByServer += 1
            self.live.set(errors: self.stats.errors)
            if !self.clients[slot].sending && !self.clients[slot].inFlight.isEmpty { self.clientDrained(slot) }
        }
        self.stats.lost += self.clients[slot].inFlight.count
        self.clients[slot].inFlight.removeAll()
        if self.paced { self.sentAt[slot].removeAll() }
        self.sockets[slot] = nil
    }

    /// Ends the run on this loop: what is still in flight is lost; connections close normally.
    /// Clients connected now.
    var connectedCount: Int { self.stats.connected }

    /// `-rate`: the service times (from each message's real send), as a histogram.
    func serviceHistogram() -> Histogram<UInt64> {
        var histogram = LoopRun.makeHistogram()
        self.serviceTimes.add(to: &histogram)
        return histogram
    }

    func finish() -> (RunStats, Histogram<UInt64>) {
        self.sweep?.cancel()
        self.sweep = nil
        self.fanout = nil  // It holds every loop's run.
        self.afterPoll?.cancel()
        self.afterPoll = nil
        var stats = self.stats
        for slot in self.clients.indices {
            self.clients[slot].sending = false
            self.clients[slot].closedByUs = true
            if self.sockets[slot] != nil { stats.lost += self.clients[slot].inFlight.count }
        }
        stats.lost += stats.skipped
        for case let socket? in self.sockets {
            // What crossed the wire, as the kernel counts it, before the close frames add theirs.
            if let counts = socket.wireByteCounts {
                stats.wireBytesSent &+= Int(counts.sent)
                stats.wireBytesReceived &+= Int(counts.received)
                stats.wireCounted += 1
            }
            if socket.isCompressed { stats.compressed += 1 }
            socket.close(code: .normalClosure)
        }
        var histogram = LoopRun.makeHistogram()
        self.latencies.add(to: &histogram)
        return (stats, histogram)
    }
}

/// fanout: what the loops of a run share: each room's deliveries so far (relaxed atomics, one add per
/// delivery) and members, and the runs, to reach a room's publisher on its loop.
final class FanoutShared: Sendable {
    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }
    let runs: [LoopRun]
    let delivered: [Counter]
    /// Set once every client has connected, before any publisher starts.
    let members: [Int]

    init(runs: [LoopRun], members: [Int]) {
        self.runs = runs
        self.members = members
        self.delivered = members.map { _ in Counter() }
    }
}
