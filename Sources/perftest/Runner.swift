import Dispatch
import Histogram
import StrandsCLI
import StrandsTLS
import StrandsWS

#if canImport(Glibc)
import Glibc
#endif

/// What a finished run measured.
struct RunResult: Sendable {
    var options: RunOptions
    var stats: RunStats
    var histogram: Histogram<UInt64>
    /// Seconds from the first connect to the deadline (connection set-up plus `-duration`): the window
    /// rates are computed over.
    var seconds: Double
    /// Seconds from the first connect until every client had connected or failed; `-duration` follows.
    var setupSeconds: Double
    /// The part with every client connected (set-up done, before the grace period): its seconds and
    /// the messages sent and received in it. `nil` if the run was stopped before every client connected.
    var window: (seconds: Double, sent: Int, received: Int)?
    var cpuSeconds: Double
    /// CPU seconds from the moment every client was connected to the deadline: the steady state,
    /// without connection set-up and the grace period.
    var steadyCPUSeconds: Double
    /// Round trips (messages sent, in blast mode) in that window; 0 without one.
    var steadyMessages: Int {
        self.window.map { self.options.mode == .blast ? $0.sent : $0.received } ?? 0
    }
    /// The server's CPU seconds over the same steady window (with `-server-pid`).
    var serverSteadyCPUSeconds: Double?
    var firstError: String?
    /// The signal that ended the run before its deadline, if one did.
    var interruptedBy: Int32?
    /// Second by second, from the first connect to the deadline.
    var series: [SeriesSecond] = []
    /// `-rate`: the service times (reply time less real send time; the main histogram counts from each
    /// message's intended send time).
    var serviceHistogram: Histogram<UInt64>?
}

/// Runs one load test on a loop group: connect (spread over the ramp-up), send until the deadline,
/// drain replies for the grace period, report. Called from a non-loop thread; it blocks.
enum Runner {
    static func run(_ options: RunOptions, group: LoopGroup, live: Bool) -> RunResult {
        let configuration: WebSocketConfiguration = {
            var configuration = WebSocketConfiguration()
            configuration.maxMessageSize = max(1 << 20, options.payload * 2 + 1024)
            configuration.connectTimeout = .seconds(10)
            configuration.compression = options.compression.settings
            if options.url.hasPrefix("wss://") {
                do {
                    configuration.tls = try TLSContext.client(trust: options.trust)
                } catch {
                    Output.error("perftest: \(error)")
                    exit(1)
                }
            }
            return configuration
        }()
        let runs = group.loops.map { LoopRun(loop: $0, options: options) }
        let cpuStart = Clock.processCPUSeconds()
        let start = Clock.nanoseconds()
        for (loopIndex, run) in runs.enumerated() {
            let indices = Array(stride(from: loopIndex, to: options.clients, by: runs.count))
            run.loop.execute { run.start(indices: indices, configuration: configuration) }
        }

        // `-duration` counts from the moment every client has connected or failed, so that setting up
        // thousands of connections (or a long ramp-up) never eats into the window at full load. Each
        // connect gives up at its timeout, and the wait is capped past that in any case.
        let setupLimit = configuration.connectTimeout + configuration.handshakeTimeout + .seconds(5)
        let connectCap = start + UInt64(options.rampup * 1e9) + UInt64(setupLimit.components.seconds) * 1_000_000_000
        var deadline: UInt64?
        var setupEnd = start
        var nextLive = start + 2_000_000_000
        let series = SeriesRecorder(runs: runs, start: start)
        var nextSecond = start + 1_000_000_000
        var lastSent = 0, lastReceived = 0, lastTime = start
        let totals = { (sent: runs.reduce(0) { $0 + $1.live.sent }, received: runs.reduce(0) { $0 + $1.live.received }) }
        var steadyStart: (cpu: Double, server: Double?, sent: Int, received: Int)?
        let serverCPU = { options.serverPID.flatMap { Clock.processCPUSeconds(pid: $0) } }
        while true {
            var now = Clock.nanoseconds()
            if deadline == nil {
                let settled = runs.reduce(0) { $0 + $1.live.connected + $1.live.errors }
                // connect mode opens connections all along: the run is its window from the start.
                let continuous = options.mode == .connect && !options.hold
                if settled >= options.clients || now >= connectCap || continuous {
                    let (sent, received) = totals()
                    steadyStart = (Clock.processCPUSeconds(), serverCPU(), sent, received)
                    now = Clock.nanoseconds()
                    setupEnd = now
                    deadline = now + UInt64(options.duration * 1e9)
                    if options.rate != nil {
                        for run in runs { run.loop.execute { run.startPacing() } }
                    }
                    // fanout publishes once every member is in its room, so none misses a message.
                    if options.mode == .fanout {
                        var members = Array(repeating: 0, count: options.rooms)
                        for run in runs {
                            guard let counts = run.loop.runAndWait({ run.countMembers() }) else { continue }
                            for room in 0..<options.rooms { members[room] += counts[room] }
                        }
                        let shared = FanoutShared(runs: runs, members: members)
                        // Every loop counts deliveries before any publisher starts.
                        for run in runs { _ = run.loop.runAndWait { run.fanout = shared } }
                        for run in runs { run.loop.execute { run.startPublishing() } }
                    }
                }
            }
            if let deadline, now >= deadline { break }
            if now >= nextSecond {
                series.tick(now)
                nextSecond += 1_000_000_000
            }
            if live && now >= nextLive {
                let (sent, received) = totals()
                let connected = runs.reduce(0) { $0 + $1.live.connected }
                let errors = runs.reduce(0) { $0 + $1.live.errors }
                let dt = Double(now - lastTime) / 1e9
                Output.line(String(format2: "[%5.1fs] conns %d/%d  sent %d (%d/s)  recv %d (%d/s)  errors %d",
                                   Double(now - start) / 1e9, connected, options.clients, sent,
                                   Int(Double(sent - lastSent) / dt), received, Int(Double(received - lastReceived) / dt),
                                   errors))
                (lastSent, lastReceived, lastTime) = (sent, received, now)
                nextLive += 2_000_000_000
            }
            // Until the deadline is known, look at the connection count every 5 ms.
            var wake = min(deadline ?? (now + 5_000_000), nextSecond)
            if live { wake = min(wake, nextLive) }
            if Interrupt.sleep(until: wake) { break }
        }
        let end = Clock.nanoseconds()
        if deadline == nil { setupEnd = end }  // Stopped before every client had connected.
        let seconds = Double(end - start) / 1e9
        let steadyEnd = (cpu: Clock.processCPUSeconds(), server: serverCPU(), totals: totals())

        // Stop sending everywhere; wait for replies in flight, up to the grace period.
        let drained = Locked(0)
        let allDrained = DispatchSemaphore(value: 0)
        for run in runs {
            run.loop.execute {
                run.stopSending {
                    if drained.withLock({ $0 += 1; return $0 }) == runs.count { allDrained.signal() }
                }
            }
        }
        let graceEnd = Clock.nanoseconds() + UInt64(options.grace * 1e9)
        if options.mode != .blast {
            _ = allDrained.wait(timeout: .now() + options.grace)
        }
        // fanout: the publishers have their own copies back; wait, within the grace period, for the
        // other members' deliveries: every message to every member who was in its room.
        var expectedDeliveries: Int?
        if options.mode == .fanout {
            var published = Array(repeating: 0, count: options.rooms), members = published
            for run in runs {
                guard let counts = run.loop.runAndWait({ (run.publishedByRoom, run.membersByRoom) }) else { continue }
                for room in 0..<options.rooms {
                    published[room] += counts.0[room]
                    members[room] += counts.1[room]
                }
            }
            let expected = zip(published, members).reduce(0) { $0 + $1.0 * $1.1 }
            expectedDeliveries = expected
            while totals().received < expected && Clock.nanoseconds() < graceEnd {
                if Interrupt.sleep(until: min(graceEnd, Clock.nanoseconds() + 1_000_000)) { break }
            }
        }

        // The series' last second ends now, after the grace period: what was sent as sending stopped, and
        // the replies that came in grace, count in it.
        series.tick(Clock.nanoseconds())

        var stats = RunStats()
        var histogram = LoopRun.makeHistogram()
        var firstError: String?
        var serviceHistogram = options.rate == nil ? nil : LoopRun.makeHistogram()
        for run in runs {
            guard let (loopStats, loopHistogram) = run.loop.runAndWait({ run.finish() }) else { continue }
            stats = stats + loopStats
            histogram.add(loopHistogram)
            if serviceHistogram != nil, let service = run.loop.runAndWait({ run.serviceHistogram() }) { serviceHistogram!.add(service) }
            firstError = firstError ?? run.loop.runAndWait { run.firstError } ?? nil
        }
        if let expectedDeliveries {
            stats.expected = expectedDeliveries
            stats.lost = max(0, expectedDeliveries - stats.received)
        }
        return RunResult(options: options, stats: stats, histogram: histogram, seconds: seconds,
                         setupSeconds: Double(setupEnd - start) / 1e9,
                         window: steadyStart.map { (Double(end - setupEnd) / 1e9,
                                                    steadyEnd.totals.sent - $0.sent, steadyEnd.totals.received - $0.received) },
                         cpuSeconds: Clock.processCPUSeconds() - cpuStart,
                         steadyCPUSeconds: steadyStart.map { steadyEnd.cpu - $0.cpu } ?? 0,
                         serverSteadyCPUSeconds: steadyStart.flatMap { start in
                             start.server.flatMap { before in steadyEnd.server.map { $0 - before } }
                         },
                         firstError: firstError, interruptedBy: Interrupt.signal, series: series.seconds,
                         serviceHistogram: serviceHistogram)
    }
}

extension String {
    /// A tiny printf for the report: `%d`, `%s`, `%.Nf`, `%N.Nf` and `%%`, without Foundation.
    init(format2 format: String, _ arguments: any Sendable...) {
        var out = ""
        var args = arguments.makeIterator()
        var chars = Array(format)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            guard c == "%", i + 1 < chars.count else {
                out.append(c)
                i += 1
                continue
            }
            var j = i + 1
            var spec = ""
            while j < chars.count, "0123456789.".contains(chars[j]) {
                spec.append(chars[j])
                j += 1
            }
            guard j < chars.count else { break }
            let kind = chars[j]
            i = j + 1
            if kind == "%" {
                out.append("%")
                continue
            }
            let parts = spec.split(separator: ".", omittingEmptySubsequences: false)
            let width = Int(parts.first ?? "") ?? 0
            let precision = parts.count > 1 ? Int(parts[1]) ?? 6 : 6
            var text: String
            switch (kind, args.next()) {
            case ("d", let value?): text = "\(value)"
            case ("s", let value?): text = "\(value)"
            case ("f", let value as Double): text = fixed(value, precision)
            case ("f", let value as Int): text = fixed(Double(value), precision)
            default: text = "?"
            }
            while text.count < width { text = " " + text }
            out += text
        }
        chars = []
        self = out
    }
}

/// `value` with `digits` decimals, rounded.
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    var fraction = String(Int(scaled.truncatingRemainder(dividingBy: scale)))
    while fraction.count < digits { fraction = "0" + fraction }
    let sign = value < 0 && scaled != 0 ? "-" : ""
    return digits == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(fraction)"
}
