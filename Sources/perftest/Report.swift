import Foundation
import Histogram
import StrandsCLI
import StrandsLoop

/// The figures of one run, as printed and as written to `-json`.
struct Report: Codable, Sendable {
    struct Latency: Codable, Sendable {
        var samples: UInt64
        var p50Ms: Double, p90Ms: Double, p95Ms: Double, p99Ms: Double, p999Ms: Double, maxMs: Double, meanMs: Double
    }

    var target: String
    var mode: String
    /// permessage-deflate offered: off, shared or dedicated.
    var compression: String
    var clients: Int
    /// fanout: rooms, and messages in flight per publisher.
    var rooms: Int?
    var publisherWindow: Int?
    /// connect: the connections were held, not closed and reopened.
    var hold: Bool?
    var payloadBytes: Int
    /// What filled the data field: x or text (``DataKind``).
    var data: String
    var durationSeconds: Double
    /// Connection set-up plus `-duration`.
    var measuredSeconds: Double
    /// The part of ``measuredSeconds`` before every client had connected or failed.
    var setupSeconds: Double
    var stats: RunStats
    /// Over the time every client was connected (the whole run if it was stopped before that).
    var sentPerSecond: Double
    var receivedPerSecond: Double
    /// lost / sent, in percent.
    var lossPercent: Double
    var latency: Latency?
    /// perftest's own CPU seconds per 1,000 round trips (per 1,000 messages sent in blast mode); `nil`
    /// when there was none to divide by.
    var cpuSecondsPer1000: Double?
    /// The server's CPU seconds per 1,000 round trips over the same window, when its pid was known.
    var serverCPUSecondsPer1000: Double?
    var serverPID: Int32?
    var firstError: String?
    /// Set when SIGINT or SIGTERM ended the run before its deadline: the name of the signal.
    var stoppedBy: String?
    /// Every latency of the run in HdrHistogram's compressed V2 form, base64 ("HISTF…"), nanoseconds:
    /// what HdrHistogram's libraries (Java, C, Go, Python…) decode, and what `perftest merge` adds up.
    var histogram: String?
    /// Second by second: sent, received, errors, p50 and p99, and each second's histogram.
    var series: [SeriesSecond]?
    /// How perftest was started, and where.
    var command: [String]?
    var machine: Machine?
    /// Runs this result was merged from (`perftest merge`), with each one's command and machine.
    var mergedFrom: [Source]?
    /// `-rate`: messages per second asked for; service times (reply less real send; ``latency`` counts
    /// from each message's intended send time), and their histogram.
    var rate: Double?
    /// `-connect-rate`: connections per second asked for.
    var connectRate: Double?
    var serviceTime: Latency?
    var serviceHistogram: String?

    struct Machine: Codable, Sendable {
        var host: String
        var cores: Int
        var kernel: String

        static var current: Machine {
            var name = utsname()
            uname(&name)
            func text<T>(_ field: T) -> String {
                withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            }
            return Machine(host: text(name.nodename), cores: System.availableCPUs, kernel: text(name.release))
        }
    }

    struct Source: Codable, Sendable {
        var file: String
        var command: [String]?
        var machine: Machine?
    }

    init(_ result: RunResult) {
        let s = result.stats
        self.target = result.options.url
        self.mode = result.options.mode.rawValue
        self.compression = result.options.compression.rawValue
        self.clients = result.options.clients
        if result.options.mode == .fanout {
            self.rooms = result.options.rooms
            self.publisherWindow = result.options.window
        }
        if result.options.mode == .connect { self.hold = result.options.hold }
        self.payloadBytes = result.options.payload
        self.data = result.options.data.rawValue
        self.durationSeconds = result.options.duration
        self.measuredSeconds = result.seconds
        self.setupSeconds = result.setupSeconds
        self.stats = s
        // Rates over the time every client was connected, when there was such a time: a short run with
        // thousands of clients would otherwise mostly measure their handshakes.
        if let window = result.window, window.seconds > 0 {
            self.sentPerSecond = Double(window.sent) / window.seconds
            self.receivedPerSecond = Double(window.received) / window.seconds
        } else {
            self.sentPerSecond = Double(s.sent) / max(result.seconds, 1e-9)
            self.receivedPerSecond = Double(s.received) / max(result.seconds, 1e-9)
        }
        switch result.options.mode {
        case .blast, .connect: self.lossPercent = 0
        case .fanout: self.lossPercent = s.expected > 0 ? Double(s.lost) * 100 / Double(s.expected) : 0
        default: self.lossPercent = s.sent > 0 ? Double(s.lost) * 100 / Double(s.sent) : 0
        }
        let h = result.histogram
        self.latency = Self.latency(of: h, sumNanoseconds: s.latencySumNanoseconds)
        // Steady state when there was one to measure; the whole run otherwise.
        self.serverPID = result.options.serverPID
        if result.steadyMessages > 0 {
            self.cpuSecondsPer1000 = result.steadyCPUSeconds / Double(result.steadyMessages) * 1000
            self.serverCPUSecondsPer1000 = result.serverSteadyCPUSeconds.map { $0 / Double(result.steadyMessages) * 1000 }
        } else {
            let units = result.options.mode == .blast ? s.sent : s.received
            self.cpuSecondsPer1000 = units > 0 ? result.cpuSeconds / Double(units) * 1000 : nil
        }
        self.firstError = result.firstError
        self.stoppedBy = result.interruptedBy.map(Interrupt.name(of:))
        self.histogram = h.totalCount > 0 ? HistogramCodec.encode(h) : nil
        self.rate = result.options.rate
        self.connectRate = result.options.connectRate
        if let service = result.serviceHistogram, service.totalCount > 0 {
            self.serviceTime = Self.latency(of: service, sumNanoseconds: 0)
            self.serviceTime?.meanMs = service.mean / 1e6
            self.serviceHistogram = HistogramCodec.encode(service)
        }
        self.series = result.series
        self.command = CommandLine.arguments
        self.machine = .current
    }

    /// The percentiles of `h` (nil if it is empty), with the mean from the exact sum.
    static func latency(of h: Histogram<UInt64>, sumNanoseconds: Int) -> Latency? {
        guard h.totalCount > 0 else { return nil }
        func ms(_ ns: UInt64) -> Double { Double(ns) / 1e6 }
        return Latency(
            samples: h.totalCount, p50Ms: ms(h.valueAtPercentile(50)), p90Ms: ms(h.valueAtPercentile(90)),
            p95Ms: ms(h.valueAtPercentile(95)), p99Ms: ms(h.valueAtPercentile(99)),
            p999Ms: ms(h.valueAtPercentile(99.9)), maxMs: ms(h.max),
            meanMs: Double(sumNanoseconds) / Double(h.totalCount) / 1e6)
    }

    /// The Go tool's results block, extended with what it does not tell.
    func printText() {
        let s = self.stats
        Output.line("")
        Output.line("=== Results ===")
        Output.line("Mode:            \(self.mode)")
        if self.mode == Mode.connect.rawValue && self.hold != true {
            Output.line("Clients:         \(s.requested), \(s.connected) of them opened at least one")
        } else {
            Output.line("Connected:       \(s.connected)/\(s.requested)")
        }
        if let signal = self.stoppedBy {
            Output.line("Stopped early:   \(signal) after \(fixed(self.measuredSeconds, 2))s of \(fixed(self.durationSeconds, 1))s")
        }
        if self.mode == Mode.connect.rawValue && self.hold != true {
            Output.line("Duration:        \(fixed(self.measuredSeconds, 2))s")
        } else {
            Output.line("Duration:        \(fixed(self.measuredSeconds, 2))s (connecting \(fixed(self.setupSeconds, 2))s, "
                + "then \(fixed(self.measuredSeconds - self.setupSeconds, 2))s with every client connected)")
        }
        if let rooms = self.rooms {
            Output.line("Rooms:           \(rooms), one publisher each, \(self.publisherWindow ?? 1) in flight per publisher")
            Output.line("Published:       \(s.sent) (\(Int(self.sentPerSecond.rounded())) msg/s)")
            Output.line("Deliveries:      \(s.received) of \(s.expected) owed (\(Int(self.receivedPerSecond.rounded())) deliveries/s)")
            Output.line("Lost:            \(s.lost) (\(fixed(self.lossPercent, 2))%)")
            Output.line("Reply timeouts:  \(s.timeouts) (a message not delivered to its whole room within -timeout)")
        } else if self.mode == Mode.connect.rawValue {
            if self.hold == true {
                let rate = self.setupSeconds > 0 ? Double(s.connected) / self.setupSeconds : 0
                Output.line("Opened:          \(s.received) in \(fixed(self.setupSeconds, 2))s (\(Int(rate.rounded()))/s), then held idle "
                    + "for \(fixed(self.measuredSeconds - self.setupSeconds, 2))s")
            } else {
                Output.line("Opened:          \(s.received) of \(s.sent) tried (\(Int(self.receivedPerSecond.rounded()))/s), each closed "
                    + "with a close handshake and opened again")
            }
        } else {
            Output.line("Messages sent:   \(s.sent) (\(Int(self.sentPerSecond.rounded())) msg/s)")
        }
        if self.rooms != nil || self.mode == Mode.connect.rawValue {
        } else if self.mode == Mode.blast.rawValue {
            Output.line("Messages recv:   \(s.received) echoes read, not awaited (blast sends only)")
        } else {
            Output.line("Messages recv:   \(s.received) (\(Int(self.receivedPerSecond.rounded())) msg/s)")
            Output.line("In flight at end: \(s.inFlightAtDeadline), answered in grace: \(s.answeredInGrace)")
            Output.line("Lost:            \(s.lost) (\(fixed(self.lossPercent, 2))%)"
                + (s.skipped > 0 ? ", \(s.skipped) skipped by the server" : ""))
            Output.line("Reply timeouts:  \(s.timeouts)" + (s.late > 0 ? " (\(s.late) answered late)" : ""))
        }
        Output.line("Errors:          \(s.errors) (refused \(s.refused), connect \(s.connectFailed), "
            + "handshake \(s.handshakeFailed), timed out \(s.connectTimedOut), tls \(s.tlsFailed), closed by server \(s.closedByServer))")
        if let first = self.firstError { Output.line("First error:     \(first)") }
        if self.compression != CompressionChoice.off.rawValue {
            Output.line("Compression:     \(self.compression) offered, agreed by \(s.compressed) of \(s.wireCounted) connections open at the end")
        }
        if s.wireCounted > 0 && self.mode != Mode.connect.rawValue {
            // Wire bytes of the connections open at the end; payload bytes of every message.
            func ratio(_ wire: Int, _ payload: Int) -> String { payload > 0 ? fixed(Double(wire) / Double(payload), 3) : "n/a" }
            Output.line("Wire bytes:      sent \(s.wireBytesSent) for \(s.payloadBytesSent) payload bytes "
                + "(\(ratio(s.wireBytesSent, s.payloadBytesSent))), received \(s.wireBytesReceived) for \(s.payloadBytesReceived) "
                + "(\(ratio(s.wireBytesReceived, s.payloadBytesReceived)))")
        }
        if let l = self.latency {
            // connect mode: from the TCP connect to the WebSocket handshake's end (TLS's included).
            let name = self.mode == Mode.connect.rawValue ? "Opening" : "Latency"
            Output.line("\(name) p50:     \(fixed(l.p50Ms, 3))ms")
            Output.line("\(name) p90:     \(fixed(l.p90Ms, 3))ms")
            Output.line("\(name) p95:     \(fixed(l.p95Ms, 3))ms")
            Output.line("\(name) p99:     \(fixed(l.p99Ms, 3))ms")
            Output.line("\(name) p99.9:   \(fixed(l.p999Ms, 3))ms")
            Output.line("\(name) max:     \(fixed(l.maxMs, 3))ms")
        }
        if let rate = self.connectRate {
            let opened = self.setupSeconds > 0 && self.hold == true ? Double(s.received) / self.setupSeconds : self.sentPerSecond
            Output.line("Connect rate:    asked \(Int(rate.rounded()))/s, started \(Int(opened.rounded()))/s "
                + "(\(fixed(opened / rate * 100, 1))%), backlog at end \(s.backlogAtEnd) (largest \(s.maxBacklog); "
                + "a backlog is openings due with every -clients slot busy)")
        }
        if let rate = self.rate {
            let held = self.sentPerSecond / rate
            Output.line("Rate:            asked \(Int(rate.rounded())) msg/s, sent \(Int(self.sentPerSecond.rounded())) msg/s "
                + "(\(fixed(held * 100, 1))%), backlog at end \(s.backlogAtEnd) (largest \(s.maxBacklog))")
            if held < 0.99 || s.backlogAtEnd > 0 {
                Output.line("Rate not held:   the target (or perftest) fell behind the schedule; latency counts from each "
                    + "message's intended send time, so the wait is in it")
            }
            if let l = self.serviceTime {
                Output.line("Service p50:     \(fixed(l.p50Ms, 3))ms  p99: \(fixed(l.p99Ms, 3))ms  max: \(fixed(l.maxMs, 3))ms "
                    + "(from each message's real send; Latency above is from its intended one)")
            }
        }
        if self.mode == Mode.connect.rawValue && self.hold == true { return }  // Its window is idle time.
        let unit = self.mode == Mode.blast.rawValue ? "messages sent" : self.rooms != nil ? "deliveries"
            : self.mode == Mode.connect.rawValue ? "connections opened and closed" : "round trips"
        guard let cpu = self.cpuSecondsPer1000 else {
            Output.line("perftest CPU:    n/a (no \(unit))")
            return
        }
        Output.line("perftest CPU:    \(cpuMilliseconds(cpu)) ms per 1,000 \(unit)")
        if let server = self.serverCPUSecondsPer1000, let pid = self.serverPID {
            Output.line("server CPU:      \(cpuMilliseconds(server)) ms per 1,000 \(unit) (pid \(pid), same window; "
                + "perftest/server \(fixed(cpu / max(server, 1e-12), 3)))")
        }
    }

    func writeJSON(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}

/// CPU milliseconds per 1,000 round trips, from seconds: three decimals below 1 ms (echo and blast cost
/// a few tenths), so that two runs' figures can be told apart; two above.
func cpuMilliseconds(_ seconds: Double) -> String {
    let milliseconds = seconds * 1000
    return fixed(milliseconds, milliseconds < 1 ? 3 : 2)
}
