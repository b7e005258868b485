import Foundation
import StrandsCLI
import StrandsWS

extension PerfTestMain {
    /// The rows of the PyStrands table: name, clients, mode, seconds.
    static let rows: [(name: String, clients: Int, mode: Mode, seconds: Double)] = [
        ("Baseline", 100, .pingpong, 10), ("Scale Up", 1000, .pingpong, 15), ("Stress", 5000, .pingpong, 17),
        ("Async", 500, .echo, 15), ("Blast", 100, .blast, 0.8),
    ]

    static func suite(_ command: SuiteCommand) {
        let load = command.load
        let mostClients = Self.rows.map(\.clients).max()!
        Self.ensureOpenFiles(clients: mostClients)  // Before a server is started for nothing.
        Interrupt.install()  // Before the server: a signal from here on ends the suite with its table.
        var server: SpawnedServer?
        var url = load.url
        if load.host == nil {
            // The server gets one CPU, perftest the others; both pinned, as the benchmark rules want.
            let cpus = System.allowedCPUs
            let clientCPUs = cpus.filter { $0 != command.serverCPU }
            do {
                try System.restrictCurrentThread(toCPUs: [command.serverCPU])
                server = try SpawnedServer(payloadLimit: load.payload)
                try System.restrictCurrentThread(toCPUs: clientCPUs.isEmpty ? cpus : clientCPUs)
            } catch {
                die("perftest", "cannot start the echoserver: \(error)")
            }
            if clientCPUs.isEmpty { Output.error("perftest: one CPU only: server and perftest share it") }
            url = "ws://127.0.0.1:\(server!.port)\(load.path)"
            Output.line("perftest suite: started echoserver (pid \(server!.pid)) on 127.0.0.1:\(server!.port), CPU "
                + "\(command.serverCPU); perftest on CPU \((clientCPUs.isEmpty ? cpus : clientCPUs).map(String.init).joined(separator: ","))")
        }
        let group = Self.makeGroup(workers: load.workers, clients: mostClients)
        Output.line("perftest suite: target \(url), payload \(load.payload) bytes, \(group.loops.count) loop(s), "
            + "durations x\(command.scale)")

        var reports: [Report] = []
        for row in Self.rows where Interrupt.signal == nil {
            let options = load.runOptions(clients: row.clients, duration: row.seconds * command.scale, mode: row.mode, url: url,
                                          serverPID: server?.pid)
            Output.line("perftest suite: \(row.name): \(row.clients) clients, \(row.mode.rawValue), \(fixed(options.duration, 1)) s")
            let result = Runner.run(options, group: group, live: false)
            let report = Report(result)
            reports.append(report)
            Output.line("perftest suite:   sent \(result.stats.sent), received \(result.stats.received), "
                + "lost \(result.stats.lost), errors \(result.stats.errors)")
            // Let the server finish closing this row's connections before the next row connects.
            server?.waitForIdle()
        }
        group.shutdown()
        server?.stop()

        let table = Self.markdown(reports)
        Output.line("")
        Output.line(table)
        if let path = command.markdown {
            do { try table.write(toFile: path, atomically: true, encoding: .utf8) } catch { die("perftest", "cannot write \(path): \(error)") }
        }
        if let path = load.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do { try encoder.encode(reports).write(to: URL(fileURLWithPath: path)) } catch { die("perftest", "cannot write \(path): \(error)") }
        }
        if let signal = Interrupt.signal {
            Output.error("perftest suite: stopped by a signal after \(reports.count) of \(Self.rows.count) rows")
            exit(128 + signal)
        }
        exit(reports.allSatisfy { $0.stats.connected > 0 } ? 0 : 1)
    }

    static func markdown(_ reports: [Report]) -> String {
        var lines = [
            "| Test | Clients | Mode | Duration | Msg/s (sent) | Msg/s (recv) | p50 lat | p99 lat | Loss | Errors | CPU ms per 1k round trips (perftest / server) |",
            "|------|---------|------|----------|--------------|--------------|---------|---------|------|--------|------|",
        ]
        for (index, report) in reports.enumerated() {
            let row = Self.rows[index]
            let blast = report.mode == Mode.blast.rawValue
            let clients = report.stats.connected == report.stats.requested
                ? "\(report.clients.formatted())" : "\(report.stats.connected.formatted())/\(report.clients.formatted())"
            let latency = { (ms: Double?) in ms.map { "\(fixed($0, 2))ms" } ?? "-" }
            let cpu = (report.cpuSecondsPer1000.map { cpuMilliseconds($0) } ?? "-") + " / "
                + (report.serverCPUSecondsPer1000.map { cpuMilliseconds($0) } ?? "-")
            lines.append("| \(row.name) | \(clients) | \(report.mode) | \(fixed(report.measuredSeconds, 1))s | "
                + "\(Int(report.sentPerSecond.rounded()).formatted()) | "
                + (blast ? "(\(Int(report.receivedPerSecond.rounded()).formatted()) echoes read) | - | - | n/a | " :
                    "\(Int(report.receivedPerSecond.rounded()).formatted()) | \(latency(report.latency?.p50Ms)) | "
                    + "\(latency(report.latency?.p99Ms)) | \(fixed(report.lossPercent, 2))% | ")
                + "\(report.stats.errors) | \(cpu) |")
        }
        return lines.joined(separator: "\n")
    }
}

extension Int {
    /// 1234567 as "1,234,567".
    func formatted() -> String {
        let digits = String(abs(self))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (self < 0 ? "-" : "") + out
    }
}

/// The `echoserver` built next to this binary, started for the suite.
final class SpawnedServer {
    let process = Process()
    let port: Int
    var pid: Int32 { self.process.processIdentifier }
    private let output = Pipe()

    init(payloadLimit: Int) throws {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let binary = me.deletingLastPathComponent().appendingPathComponent("echoserver")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw SuiteError("no echoserver next to perftest at \(binary.path): build both (swift build -c release)")
        }
        self.process.executableURL = binary
        // -parent-pid: should perftest die (killed, crashed), the server goes with it instead of holding the
        // port, a CPU and whatever pipe it inherited.
        self.process.arguments = ["-port", "0", "-host", "127.0.0.1", "-workers", "1", "-quiet",
                                  "-max-message", "\(max(1 << 20, payloadLimit * 2 + 1024))", "-parent-pid", "\(getpid())"]
        self.process.standardOutput = self.output
        try self.process.run()
        var text = ""
        let reader = self.output.fileHandleForReading
        while !text.contains("health check") {
            let data = reader.availableData
            if data.isEmpty { throw SuiteError("echoserver exited before listening: \(text)") }
            text += String(decoding: data, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first(where: { $0.contains("listening on") }),
              let address = line.split(separator: " ").dropFirst(3).first,
              let port = Int(address.split(separator: ":").last ?? "")
        else { throw SuiteError("cannot read the echoserver's port from: \(text)") }
        self.port = port
    }

    /// Waits (up to 5 s) until the server reports no open connection.
    func waitForIdle() {
        for _ in 0..<100 {
            if let health = try? Self.health(port: self.port), health.contains("\"connections\":0") { return }
            usleep(50_000)
        }
    }

    static func health(port: Int) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw SuiteError("health: cannot connect") }
        let request = Array("GET /health HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        return String(decoding: response, as: UTF8.self)
    }

    func stop() {
        guard self.process.isRunning else { return }
        kill(self.pid, SIGTERM)
        self.process.waitUntilExit()
    }
}

struct SuiteError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
