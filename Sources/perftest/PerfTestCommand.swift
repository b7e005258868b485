import ArgumentParser
import StrandsCLI
import StrandsWS

/// `perftest`: the PyStrands Go load generator's flags, plus what an honest measurement needs.
struct PerfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perftest",
        abstract: "A WebSocket load generator: pingpong, echo and blast against any RFC 6455 echo server.",
        subcommands: [RunCommand.self, SuiteCommand.self, MergeCommand.self],
        defaultSubcommand: RunCommand.self
    )
}

/// The options of one run, shared by `run` (the default) and, where they apply, by `suite`.
struct LoadOptions: ParsableArguments {
    @Option(name: [.customLong("host", withSingleDash: true), .long],
            help: "Target host:port, ws://host:port or wss://host:port (default localhost:8082; for suite, none = start an echoserver).")
    var host: String?

    /// `-host` without its scheme.
    var target: String {
        let host = self.host ?? "localhost:8082"
        for scheme in ["ws://", "wss://"] where host.lowercased().hasPrefix(scheme) { return String(host.dropFirst(scheme.count)) }
        return host
    }

    /// `-host wss://…`: TLS.
    var secure: Bool { self.host?.lowercased().hasPrefix("wss://") ?? false }

    @Option(name: [.customLong("tls-ca", withSingleDash: true), .long],
            help: "wss: trust the CAs in this PEM file instead of the system's.")
    var tlsCA: String?

    @Flag(name: [.customLong("insecure", withSingleDash: true), .long],
          help: "wss: do not verify the server's certificate (tests only: anyone in the middle can read and change the traffic).")
    var insecure = false

    @Option(name: [.customLong("path", withSingleDash: true), .long],
            help: "WebSocket path on the target (default /ws/perf; in fanout mode the rooms' prefix, default /ws/room).")
    var pathOption: String?

    func path(for mode: Mode) -> String { self.pathOption ?? (mode == .fanout ? "/ws/room" : "/ws/perf") }
    var path: String { self.path(for: .echo) }

    @Option(name: [.customLong("payload", withSingleDash: true), .long], help: "Bytes of 'x' in each message's data field.")
    var payload = 64

    @Option(name: [.customLong("data", withSingleDash: true), .long],
            help: "What fills the data field: x (the Go tool's 'x' repeated) or text (event records that differ per message, for compression).")
    var data = DataKind.x

    @Option(name: [.customLong("rampup", withSingleDash: true), .long], help: "Milliseconds over which clients connect.")
    var rampup = 0

    @Option(name: [.customLong("workers", withSingleDash: true), .long],
            help: "Event loops (threads, pinned); 0 = one per CPU this process may use.")
    var workers = 0

    @Option(name: [.customLong("timeout", withSingleDash: true), .long], help: "Seconds to wait for each reply.")
    var timeout = 1.0

    @Option(name: [.customLong("grace", withSingleDash: true), .long],
            help: "Seconds to keep reading replies after the deadline.")
    var grace = 2.0

    @Option(name: [.customLong("window", withSingleDash: true), .long],
            help: "echo mode: most messages in flight per connection (default 64); fanout: per publisher (default 1).")
    var windowOption: Int?

    func window(for mode: Mode) -> Int { self.windowOption ?? (mode == .fanout ? 1 : 64) }

    @Option(name: [.customLong("rooms", withSingleDash: true), .long], help: "fanout mode: rooms the clients are spread over.")
    var rooms = 10

    @Flag(name: [.customLong("hold", withSingleDash: true), .long],
          help: "connect mode: hold each client's connection, idle, for -duration instead of closing and reopening.")
    var hold = false

    @Option(name: [.customLong("compression", withSingleDash: true), .long],
            help: "Offer permessage-deflate: off, shared (no context takeover) or dedicated (context takeover).")
    var compression = CompressionChoice.off

    @Option(name: [.customLong("json", withSingleDash: true), .long], help: "Also write the result as JSON to this file.")
    var json: String?

    @Option(name: [.customLong("server-pid", withSingleDash: true), .long],
            help: "pid of the (local) server under test: its CPU per round trip is measured over the same window as perftest's.")
    var serverPID: Int32?

    /// Checked by the commands' own `validate`: a failure inside an option group's `validate` makes the
    /// parser retry `-host` as the short flags `-h -o -s -t` and print help instead of the error.
    func check() throws {
        let host = self.target
        guard let colon = host.lastIndex(of: ":"), let port = Int(host[host.index(after: colon)...]),
              (1...65535).contains(port), colon != host.startIndex
        else { throw ValidationError("-host \(host): expected host:port") }
        if (self.tlsCA != nil || self.insecure) && !self.secure {
            throw ValidationError("-tls-ca and -insecure need a wss:// -host")
        }
        if self.tlsCA != nil && self.insecure { throw ValidationError("-tls-ca and -insecure: choose one") }
        if let path = self.pathOption, !path.hasPrefix("/") { throw ValidationError("-path \(path): must start with /") }
        guard (0...(16 << 20)).contains(self.payload) else { throw ValidationError("-payload \(self.payload): expected 0...16777216") }
        guard (0...3_600_000).contains(self.rampup) else { throw ValidationError("-rampup \(self.rampup): expected 0...3600000 ms") }
        guard (0...1024).contains(self.workers) else { throw ValidationError("-workers \(self.workers): expected 0...1024") }
        guard self.timeout > 0 && self.timeout <= 3600 else { throw ValidationError("-timeout \(self.timeout): expected (0, 3600] s") }
        guard self.grace >= 0 && self.grace <= 3600 else { throw ValidationError("-grace \(self.grace): expected 0...3600 s") }
        if let window = self.windowOption, !(1...1_000_000).contains(window) {
            throw ValidationError("-window \(window): expected 1...1000000")
        }
        guard (1...100_000).contains(self.rooms) else { throw ValidationError("-rooms \(self.rooms): expected 1...100000") }
        if let pid = self.serverPID, pid <= 0 || Clock.processCPUSeconds(pid: pid) == nil {
            throw ValidationError("-server-pid \(pid): no such process on this machine")
        }
    }

    /// The target is 127.x.x.x or localhost: its clients may connect from several loopback addresses.
    var isLoopbackIPv4: Bool {
        let host = self.target
        let name = String(host[..<(host.lastIndex(of: ":") ?? host.endIndex)])
        return name == "localhost" || name.hasPrefix("127.")
    }

    /// `ws://host:port/path`, with a bare IPv6 address bracketed.
    var url: String { self.url(for: .echo) }

    func url(for mode: Mode) -> String {
        let host = self.target
        let colon = host.lastIndex(of: ":")!
        var name = String(host[..<colon])
        if name.contains(":") && !name.hasPrefix("[") { name = "[\(name)]" }
        return "\(self.secure ? "wss" : "ws")://\(name):\(host[host.index(after: colon)...])\(self.path(for: mode))"
    }

    func runOptions(clients: Int, duration: Double, mode: Mode, url: String? = nil, serverPID: Int32? = nil,
                    rate: Double? = nil, connectRate: Double? = nil, totalClients: Int? = nil, clientOffset: Int = 0) -> RunOptions {
        RunOptions(url: url ?? self.url(for: mode), clients: clients, duration: duration, mode: mode, payload: self.payload,
                   rampup: Double(self.rampup) / 1000, timeout: self.timeout, grace: self.grace, window: self.window(for: mode),
                   serverPID: serverPID ?? self.serverPID, compression: self.compression, data: self.data, rooms: self.rooms,
                   trust: self.insecure ? .insecureNoVerification : self.tlsCA.map { .file($0) } ?? .system, hold: self.hold,
                   rate: rate, connectRate: connectRate,
                   spreadSources: self.isLoopbackIPv4 && (totalClients ?? clients) > LoopRun.clientsPerSource, clientOffset: clientOffset)
    }
}

/// `-threshold EXPR`, repeatable: pass/fail conditions on the result (see ``Threshold``).
struct ThresholdOptions: ParsableArguments {
    @Option(name: [.customLong("threshold", withSingleDash: true), .long],
            help: "Fail (exit 99) unless the result meets this, e.g. p99<5ms, p50<=800us, loss==0, rate>=100000, errors==0; repeatable.")
    var expressions: [String] = []

    func parsed() throws -> [Threshold] {
        do {
            return try self.expressions.map { text throws(Threshold.ParseError) in try Threshold(parsing: text) }
        } catch {
            throw ValidationError("-threshold \(error.description)")
        }
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "One load test (the default): the Go tool's flags and output, with honest accounting."
    )

    @OptionGroup var load: LoadOptions

    @Option(name: [.customLong("clients", withSingleDash: true), .long], help: "Concurrent connections.")
    var clients = 100

    @Option(name: [.customLong("duration", withSingleDash: true), .long], help: "Seconds of sending.")
    var duration = 10.0

    @Option(name: [.customLong("mode", withSingleDash: true), .long], help: "pingpong, echo, blast, fanout (rooms, with -rooms) or connect (handshakes; -hold keeps them open).")
    var mode = Mode.echo

    @Option(name: [.customLong("connect-rate", withSingleDash: true), .long],
            help: "connect: open this many connections per second in all (each handshake timed), on the -clients slots free at the time; with -hold they stay open.")
    var connectRate: Double?

    @Option(name: [.customLong("rate", withSingleDash: true), .long],
            help: "echo: open loop at this many messages per second in all, spread over clients and loops; latency counts from each message's intended send time (coordinated omission corrected), service time alongside.")
    var rate: Double?

    @Option(name: [.customLong("report", withSingleDash: true), .long],
            help: "Also write an HTML report to this file: one self-contained page (percentile curve, throughput, p99 and errors over time, settings).")
    var report: String?

    /// `-procs`' processes: where this one's clients start among all, and how many there are in all.
    @Option(name: [.customLong("client-offset", withSingleDash: true)], help: .hidden)
    var clientOffset = 0
    @Option(name: [.customLong("total-clients", withSingleDash: true)], help: .hidden)
    var totalClients: Int?

    @Option(name: [.customLong("procs", withSingleDash: true), .long],
            help: "Run the clients (and -rate) split over this many perftest processes, their results merged: past one process's open-file limit.")
    var procs = 1

    @OptionGroup var thresholds: ThresholdOptions

    func validate() throws {
        try self.load.check()
        _ = try self.thresholds.parsed()
        if let rate = self.rate {
            guard rate > 0 && rate <= 100_000_000 else { throw ValidationError("-rate \(rate): expected (0, 100000000] messages/s") }
            guard self.mode == .echo else {
                throw ValidationError("-rate is for -mode echo (pingpong is closed-loop by definition; fanout at a rate is not built yet)")
            }
        }
        guard (1...1_000_000).contains(self.clients) else { throw ValidationError("-clients \(self.clients): expected 1...1000000") }
        guard self.duration > 0 && self.duration <= 86400 else { throw ValidationError("-duration \(self.duration): expected (0, 86400] s") }
        if self.load.hold && self.mode != .connect { throw ValidationError("-hold is for -mode connect") }
        if let rate = self.connectRate {
            guard rate > 0 && rate <= 1_000_000 else { throw ValidationError("-connect-rate \(rate): expected (0, 1000000] connections/s") }
            guard self.mode == .connect else { throw ValidationError("-connect-rate is for -mode connect") }
        }
        guard (1...256).contains(self.procs) else { throw ValidationError("-procs \(self.procs): expected 1...256") }
        if self.procs > self.clients { throw ValidationError("-procs \(self.procs): more processes than -clients \(self.clients)") }
        if self.procs > 1 && self.mode == .fanout {
            throw ValidationError("-procs with -mode fanout: a room's members must share one process to be counted")
        }
        if self.mode == .fanout && self.load.rooms > self.clients {
            throw ValidationError("-rooms \(self.load.rooms): more rooms than -clients \(self.clients)")
        }
    }

    func run() throws {
        PerfTestMain.single(self)
    }
}

struct SuiteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suite",
        abstract: "The five rows of the PyStrands benchmark table, printed as a Markdown table.",
        discussion: """
            Without -host, starts the echoserver built next to perftest (pinned to -server-cpu) and runs the
            load from the other CPUs, so one command on a fresh machine reproduces the whole table.
            """
    )

    @OptionGroup var load: LoadOptions

    @Option(name: [.customLong("scale", withSingleDash: true), .long],
            help: "Multiply every row's duration (10, 15, 17, 15 and 0.8 s) by this.")
    var scale = 1.0

    @Option(name: [.customLong("server-cpu", withSingleDash: true), .long],
            help: "CPU for the echoserver the suite starts; perftest runs on the others.")
    var serverCPU = 0

    @Option(name: [.customLong("markdown", withSingleDash: true), .long], help: "Also write the table to this file.")
    var markdown: String?

    func validate() throws {
        try self.load.check()
        guard self.scale > 0 && self.scale <= 100 else { throw ValidationError("-scale \(self.scale): expected (0, 100]") }
        guard (0...1023).contains(self.serverCPU) else { throw ValidationError("-server-cpu \(self.serverCPU): expected 0...1023") }
    }

    func run() throws {
        PerfTestMain.suite(self)
    }
}
extension DataKind: ExpressibleByArgument {}

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "One result from runs made at the same time (on several hosts, say), from their -json files.",
        discussion: """
            Counts and rates are summed, latency histograms added (exactly: each file carries its HdrHistogram), \
            and the per-second series aligned on wall-clock seconds. Prints the usual results block.
            """
    )

    @Argument(help: "The -json files of the runs.")
    var files: [String] = []

    @Option(name: [.customLong("json", withSingleDash: true), .long], help: "Also write the merged result as JSON to this file.")
    var json: String?

    @Option(name: [.customLong("report", withSingleDash: true), .long], help: "Also write the merged result as an HTML report.")
    var report: String?

    @OptionGroup var thresholds: ThresholdOptions

    func validate() throws {
        guard !self.files.isEmpty else { throw ValidationError("merge: name at least one -json file") }
        _ = try self.thresholds.parsed()
    }

    func run() throws {
        PerfTestMain.merge(self)
    }
}
