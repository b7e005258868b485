import Foundation
import StrandsTestSupport
import StrandsWS
import Synchronization
import Testing

/// Runs the built perftest against the built echoserver, as a user would.
@Suite("perftest binary", .serialized, .timeLimit(.minutes(3)))
struct PerfTestBinaryTests {
    struct Result: Decodable {
        struct Stats: Decodable {
            var requested, connected, sent, received, lost, timeouts, refused, closedByServer, tlsFailed: Int
            var inFlightAtDeadline, answeredInGrace: Int
            var expected: Int
        }
        struct Latency: Decodable { var samples: Int; var p50Ms, p99Ms, maxMs: Double }
        var mode: String
        var stats: Stats
        var latency: Latency?
        var lossPercent: Double
        var durationSeconds, measuredSeconds, setupSeconds: Double
        var stoppedBy: String?
        var cpuSecondsPer1000: Double?
        var serverCPUSecondsPer1000: Double?
        var serverPID: Int32?
    }

    func runPerfTest(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String, result: Result?) {
        try self.runPerfTest(arguments, as: Result.self)
    }

    /// Runs perftest with `-json` to a file of its own, read back as `T` (nil if it wrote none).
    func runPerfTest<T: Decodable>(_ arguments: [String], as: T.Type) throws -> (status: Int32, output: String, errors: String, result: T?) {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("perftest-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let (status, output, errors) = try run("perftest", arguments + ["-json", json.path])
        let result = (try? Data(contentsOf: json)).flatMap { try? JSONDecoder().decode(T.self, from: $0) }
        return (status, output, errors, result)
    }

    /// Echoes every message but each seventh, which it drops.
    final class DroppingEcho: WebSocketHandler {
        let seen = Atomic<Int>(0)
        let dropped = Atomic<Int>(0)
        func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
            if self.seen.add(1, ordering: .relaxed).newValue % 7 == 0 {
                self.dropped.add(1, ordering: .relaxed)
            } else {
                socket.send(message.opcode, message.bytes)
            }
        }
    }

    @Test("a server that drops messages: exactly those are lost, every other reply is matched", arguments: ["pingpong", "echo"])
    func dropsAreLost(mode: String) throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let handler = DroppingEcho()
        let server = WebSocketServer(group: group, configuration: WebSocketConfiguration(), handler: handler)
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        // Pingpong waits for a dropped message's reply until -timeout, then moves on.
        let (status, _, errors, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(port)", "-clients", "4", "-duration", "1", "-mode", mode, "-timeout", "0.02"])
        let r = try #require(result, "no result: \(errors)")
        let dropped = handler.dropped.load(ordering: .relaxed)
        #expect(status == 0)
        #expect(dropped > 10)
        #expect(r.stats.sent == handler.seen.load(ordering: .relaxed))
        #expect(r.stats.lost == dropped)
        #expect(r.stats.received == r.stats.sent - dropped)
        #expect(r.latency?.samples == r.stats.received)
        // Each drop is waited for until -timeout, but a client's last one may still be waiting at the deadline.
        if mode == "pingpong" { #expect(r.stats.timeouts >= dropped - 4) }
    }

    @Test("pingpong and echo: every message answered, nothing lost, latency recorded", arguments: ["pingpong", "echo"])
    func noLoss(mode: String) throws {
        let server = try ServerProcess(["-quiet"])
        defer { server.stop() }
        let pid = server.process.processIdentifier
        let (status, output, _, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(server.port)", "-clients", "20", "-duration", "1", "-mode", mode, "-server-pid", "\(pid)"])
        #expect(status == 0)
        let r = try #require(result)
        // Both processes' CPU per 1,000 round trips, over the same window: plausible, non-zero figures.
        #expect(r.serverPID == pid)
        #expect(r.cpuSecondsPer1000.map { $0 > 0 && $0 < 1 } == true)
        #expect(r.serverCPUSecondsPer1000.map { $0 > 0 && $0 < 1 } == true)
        #expect(output.contains("server CPU:") && output.contains("(pid \(pid), same window; perftest/server "))
        #expect(r.mode == mode)
        #expect(r.stoppedBy == nil)
        // -duration is spent with every client connected: it starts once the last one is.
        #expect(r.setupSeconds > 0 && r.setupSeconds < r.measuredSeconds)
        #expect(r.measuredSeconds - r.setupSeconds >= r.durationSeconds - 0.001)
        #expect(r.stats.connected == 20)
        #expect(r.stats.sent > 1000)
        // Echo's windows (64 each) are refilled as replies come, turn after turn, not sent once.
        if mode == "echo" { #expect(r.stats.sent > 10 * 20 * 64) }
        #expect(r.stats.received == r.stats.sent)
        #expect(r.stats.lost == 0)
        #expect(r.lossPercent == 0)
        #expect(r.stats.answeredInGrace == r.stats.inFlightAtDeadline)
        #expect(r.latency.map { $0.samples == r.stats.received && $0.p50Ms > 0 && $0.p99Ms >= $0.p50Ms } == true)
        #expect(output.contains("=== Results ==="))
        #expect(output.contains("Lost:            0 (0.00%)"))
    }

    @Test("fanout against echoserver -pubsub: every message reaches every member of its room, none lost")
    func fanout() throws {
        let server = try ServerProcess(["-pubsub", "-quiet"])
        defer { server.stop() }
        let (status, output, errors, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(server.port)", "-mode", "fanout", "-clients", "40", "-rooms", "4", "-window", "4", "-duration", "1"])
        #expect(status == 0, "\(errors)")
        let r = try #require(result)
        #expect(r.mode == "fanout")
        #expect(r.stats.connected == 40)
        #expect(r.stats.sent > 100)
        #expect(r.stats.expected == r.stats.sent * 10, "ten members in each room, the publisher too")
        #expect(r.stats.received == r.stats.expected)
        #expect(r.stats.lost == 0)
        #expect(r.latency.map { $0.samples == r.stats.received && $0.p50Ms > 0 } == true)
        #expect(output.contains("Rooms:           4, one publisher each, 4 in flight per publisher"))
        #expect(output.contains("Deliveries:      \(r.stats.received) of \(r.stats.expected) owed"))
        #expect(output.contains("ms per 1,000 deliveries"))
    }

    @Test("fanout counts as lost exactly the deliveries that never came: a member the server left out")
    func fanoutLoss() throws {
        /// One room; the second connection to open is never subscribed, so it gets nothing.
        final class LeavesOneOut: WebSocketHandler {
            let opened = Atomic<Int>(0)
            let topic = Mutex<Topic?>(nil)
            func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
                if self.opened.add(1, ordering: .relaxed).newValue != 2 { socket.subscribe("room") }
            }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                if let topic = self.topic.withLock({ $0 }) { _ = socket.publish(topic, message.opcode, message.bytes) }
            }
        }
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let handler = LeavesOneOut()
        let server = WebSocketServer(group: group, handler: handler)
        handler.topic.withLock { $0 = server.topic("room") }
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let (status, _, errors, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(port)", "-mode", "fanout", "-clients", "5", "-rooms", "1", "-duration", "0.5",
             "-timeout", "0.02", "-grace", "0.5"])
        #expect(status == 0, "\(errors)")
        let r = try #require(result)
        #expect(r.stats.sent > 5)
        #expect(r.stats.expected == r.stats.sent * 5)
        #expect(r.stats.received == r.stats.sent * 4)
        #expect(r.stats.lost == r.stats.sent)
        #expect(r.stats.timeouts > 0, "the publisher waits for the missing member only until -timeout")
    }

    @Test("fanout: more rooms than clients is refused with exit 2")
    func fanoutBadRooms() throws {
        let (status, _, errors) = try run("perftest", ["-mode", "fanout", "-clients", "3", "-rooms", "4"])
        #expect(status == 2)
        #expect(errors.contains("-rooms 4"))
    }

    @Test("blast sends without waiting and says so")
    func blast() throws {
        let server = try ServerProcess(["-quiet"])
        defer { server.stop() }
        let (status, output, _, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(server.port)", "-clients", "5", "-duration", "0.5", "-mode", "blast"])
        #expect(status == 0)
        #expect((result?.stats.sent ?? 0) > 1000)
        #expect(output.contains("not awaited"))
    }

    @Test("SIGINT ends a run early: replies drained, results printed and written, exit 130")
    func interrupted() throws {
        let server = try ServerProcess(["-quiet"])
        defer { server.stop() }
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("perftest-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: json) }
        // Should the signal be ignored, the run would last a minute: it is killed sooner, and fails.
        let child = try Child("perftest", ["-host", "127.0.0.1:\(server.port)", "-clients", "10", "-duration", "60",
                                           "-mode", "pingpong", "-json", json.path], limit: 20)
        _ = child.readOutput(untilContains: "Target: ")
        kill(child.pid, SIGINT)
        let (status, text, errors) = child.finish()
        #expect(status == 130)
        #expect(errors.contains("perftest: SIGINT: stopping early"))
        #expect(text.contains("=== Results ==="))
        #expect(text.contains("Stopped early:   SIGINT after "))
        #expect(text.contains("Lost:            0 (0.00%)"))
        let result = try #require((try? Data(contentsOf: json)).flatMap { try? JSONDecoder().decode(Result.self, from: $0) })
        #expect(result.stoppedBy == "SIGINT")
        #expect(result.measuredSeconds < 20)
        #expect(result.stats.lost == 0 && result.stats.received == result.stats.sent)
    }

    /// Counts opens and normal closes; `allClosed` is signalled each time no connection is open.
    final class Counting: WebSocketHandler {
        let opened = Atomic<Int>(0)
        let open = Atomic<Int>(0)
        let closedNormally = Atomic<Int>(0)
        let allClosed = DispatchSemaphore(value: 0)
        func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
            self.opened.add(1, ordering: .relaxed)
            self.open.add(1, ordering: .relaxed)
        }
        func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
            if code == .normalClosure { self.closedNormally.add(1, ordering: .relaxed) }
            if self.open.subtract(1, ordering: .relaxed).newValue == 0 { self.allClosed.signal() }
        }
        /// Waits until the last connection is closed (each close that empties the server signals once).
        func waitUntilAllClosed() -> Bool {
            while self.open.load(ordering: .relaxed) > 0 || self.opened.load(ordering: .relaxed) == 0 {
                if self.allClosed.wait(timeout: .now() + 10) == .timedOut { return false }
            }
            return true
        }
    }

    /// A server on one loop and a free port whose handler counts.
    func countingServer() throws -> (LoopGroup, Counting, Int) {
        let group = try LoopGroup(loopCount: 1)
        let handler = Counting()
        let server = WebSocketServer(group: group, configuration: WebSocketConfiguration(), handler: handler)
        return (group, handler, try server.listen(host: "127.0.0.1", port: 0).port)
    }

    @Test("connect mode: every connection it counts the server opened, and each is closed with a close handshake")
    func connectMode() throws {
        let (group, handler, port) = try self.countingServer()
        defer { group.shutdown() }
        let (status, output, errors, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(port)", "-clients", "8", "-duration", "0.5", "-mode", "connect"])
        let r = try #require(result, "no result: \(errors)")
        #expect(status == 0)
        #expect(r.mode == "connect")
        #expect(r.stats.received > 100, "connections opened")
        // Openings still under way at the deadline finish after perftest stopped counting: at most one per client.
        let opened = handler.opened.load(ordering: .relaxed)
        #expect(r.stats.received <= opened && opened <= r.stats.received + 8, "server \(opened), perftest \(r.stats.received)")
        #expect(r.latency?.samples == r.stats.received)
        #expect(output.contains("Opened:          \(r.stats.received) of"))
        #expect(output.contains("per 1,000 connections opened and closed"))
        #expect(r.stats.closedByServer == 0 && r.stats.lost == 0)
        #expect(handler.waitUntilAllClosed(), "connections left open")
        #expect(handler.closedNormally.load(ordering: .relaxed) >= r.stats.received)
    }

    @Test("connect -hold: each client's one connection stays open for the run, then closes")
    func connectHold() throws {
        let (group, handler, port) = try self.countingServer()
        defer { group.shutdown() }
        let child = try Child("perftest", ["-host", "127.0.0.1:\(port)", "-clients", "50", "-duration", "1", "-mode", "connect", "-hold"], limit: 20)
        _ = child.readOutput(untilContains: "Target: ")
        let (status, output, _) = child.finish()
        #expect(status == 0)
        #expect(output.contains("Opened:          50 in "))
        #expect(output.contains("then held idle"))
        #expect(handler.opened.load(ordering: .relaxed) == 50)
        #expect(handler.waitUntilAllClosed(), "connections left open")
        #expect(handler.closedNormally.load(ordering: .relaxed) == 50)
    }

    @Test("connect mode against a TLS server it cannot verify: failures counted by cause (tls), exit 1")
    func connectTLSFailure() async throws {
        let certificates = try TestCertificates(), other = try TestCertificates()
        let server = try ServerProcess(["-tls-cert", certificates.chain, "-tls-key", certificates.key, "-quiet"])
        defer { server.stop() }
        _ = await server.nextLine(containing: "WebSocket endpoint")
        let (status, output, _, result) = try self.runPerfTest(
            ["-host", "wss://localhost:\(server.port)", "-tls-ca", other.ca, "-clients", "2", "-duration", "0.3", "-mode", "connect"])
        #expect(status == 1)
        #expect((result?.stats.tlsFailed ?? 0) >= 2)
        #expect(result?.stats.received == 0)
        #expect(output.contains("unable to get local issuer certificate"), "\(output)")
    }

    @Test("a server that is not there: every client counted as refused, the cause printed, exit 1")
    func refused() throws {
        let (status, output, _, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:1", "-clients", "3", "-duration", "0.2", "-mode", "pingpong"])
        #expect(status == 1)
        #expect(result?.stats.refused == 3)
        #expect(output.contains("First error:     connect to 127.0.0.1:1: ECONNREFUSED (connection refused)"))
        // No round trip to divide by: no CPU figure, rather than the whole run's CPU shown as one's cost.
        #expect(output.contains("perftest CPU:    n/a (no round trips)"))
        #expect(result != nil && result?.cpuSecondsPer1000 == nil)
    }

    @Test("bad flags and values exit 2", arguments: [
        ["-mode", "flood"], ["-clients", "0"], ["-host", "nocolon"], ["-duration", "-1"], ["-payload", "x"], ["--nope"],
        ["-server-pid", "0"], ["-threshold", "p99~5ms"], ["-threshold", "latency<5ms"], ["-threshold", "p99<fast"],
        ["merge"], ["merge", "/nonexistent/a.json"], ["-rate", "0"], ["-rate", "1000", "-mode", "pingpong"], ["-rate", "x"],
        ["-procs", "0"], ["-procs", "5", "-clients", "4"], ["-connect-rate", "10"], ["-mode", "connect", "-connect-rate", "0"],
    ])
    func badFlags(arguments: [String]) throws {
        let (status, output, errors) = try run("perftest", arguments)
        #expect(status == 2)
        #expect(output.isEmpty)
        #expect(errors.hasPrefix("perftest: "))
    }

    @Test("a crossed threshold exits 99 and says which; the ones met say ok; the JSON is still written")
    func thresholdCrossed() throws {
        let server = try ServerProcess(["-quiet"])
        defer { server.stop() }
        let (status, output, errors, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(server.port)", "-clients", "4", "-duration", "0.5",
             "-threshold", "p99<1ns", "-threshold", "loss==0", "-threshold", "rate>=1"])
        #expect(status == 99)
        #expect(errors.contains("perftest: threshold crossed: p99<1ns (p99 = "))
        #expect(!errors.contains("loss==0"))
        #expect(output.contains("Threshold:       p99<1ns  CROSSED (p99 = "))
        #expect(output.contains("Threshold:       loss==0  ok (loss = 0)"))
        #expect(output.contains("Threshold:       rate>=1  ok"))
        #expect(result?.stats.received ?? 0 > 0)
        let (passing, _, _, _) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(server.port)", "-clients", "4", "-duration", "0.5", "-threshold", "p99<60s", "-threshold", "errors==0"])
        #expect(passing == 0)
    }

    @Test("perftest merge: runs made at the same time add up, and a threshold applies to the sum")
    func mergeBinary() throws {
        let server = try ServerProcess(["-quiet"])
        defer { server.stop() }
        let directory = FileManager.default.temporaryDirectory
        let files = (0..<3).map { directory.appendingPathComponent("merge-\($0)-\(UUID().uuidString).json").path }
        defer { for file in files { try? FileManager.default.removeItem(atPath: file) } }
        let outcomes = Mutex<[Int32]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { n in
            let status = (try? run("perftest", ["-host", "127.0.0.1:\(server.port)", "-clients", "\(3 + n)", "-duration", "1",
                                                "-json", files[n]]).0) ?? -1
            outcomes.withLock { $0.append(status) }
        }
        #expect(outcomes.withLock { $0 } == [0, 0])
        let (status, output, errors) = try run("perftest", ["merge", files[0], files[1], "-json", files[2], "-threshold", "loss==0"])
        #expect(status == 0, "\(errors)")
        #expect(output.contains("2 runs merged"))
        #expect(output.contains("Connected:       7/7"))
        let runs = try files.map { try JSONDecoder().decode(Result.self, from: Data(contentsOf: URL(fileURLWithPath: $0))) }
        #expect(runs[2].stats.sent == runs[0].stats.sent + runs[1].stats.sent)
        #expect(runs[2].stats.received == runs[0].stats.received + runs[1].stats.received)
        #expect(runs[2].latency?.samples == (runs[0].latency?.samples ?? 0) + (runs[1].latency?.samples ?? 0))
        let (crossed, _, crossedErrors) = try run("perftest", ["merge", files[0], files[1], "-threshold", "sent<1"])
        #expect(crossed == 99)
        #expect(crossedErrors.contains("threshold crossed: sent<1"))
    }

    struct RateResult: Decodable {
        struct Stats: Decodable { var sent, received, lost, backlogAtEnd, maxBacklog: Int }
        struct Second: Decodable { var sent: Int; var seconds: Double }
        struct Latency: Decodable { var samples: Int; var p50Ms, p99Ms: Double }
        var stats: Stats
        var rate: Double?
        var sentPerSecond: Double
        var series: [Second]
        var latency: Latency?
        var serviceTime: Latency?
    }

    @Test("-rate holds its rate, second by second, and says so")
    func rateHeld() throws {
        let server = try ServerProcess(["-quiet"])
        defer { server.stop() }
        let (status, output, errors, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(server.port)", "-clients", "50", "-duration", "2", "-rate", "20000"], as: RateResult.self)
        #expect(status == 0, "\(errors)")
        let r = try #require(result)
        #expect(r.rate == 20000)
        #expect(abs(r.sentPerSecond - 20000) / 20000 < 0.02, "sent \(r.sentPerSecond)/s")
        #expect(r.stats.lost == 0 && r.stats.backlogAtEnd == 0)
        // Every second between the first (connections opening) and the last (a part-second, then the
        // grace period) sent at 20,000/s, measured over the second as the runner's tick saw it.
        #expect(r.series.count >= 3)
        for second in r.series.dropFirst().dropLast() {
            #expect(abs(Double(second.sent) / second.seconds - 20000) < 600, "a second sent \(second.sent) in \(second.seconds) s")
        }
        #expect(r.serviceTime != nil && r.latency != nil)
        #expect(output.contains("Rate:            asked 20000 msg/s, sent "))
        #expect(!output.contains("Rate not held"))
    }

    /// Answers nothing: every client's window fills, and the schedule runs on without it.
    final class Silent: WebSocketHandler {
        func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {}
    }

    @Test("-rate against a server that stops answering: the backlog is counted and the rate reported as not held")
    func rateNotHeld() throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let server = WebSocketServer(group: group, configuration: WebSocketConfiguration(), handler: Silent())
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let (_, output, _, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(port)", "-clients", "4", "-duration", "1", "-rate", "5000", "-window", "8", "-timeout", "0.2",
             "-grace", "0"], as: RateResult.self)
        let r = try #require(result)
        #expect(r.stats.sent == 32)  // 4 clients × a window of 8, then nothing had room.
        #expect(r.stats.backlogAtEnd > 4000, "backlog \(r.stats.backlogAtEnd)")
        #expect(r.stats.maxBacklog >= r.stats.backlogAtEnd)
        #expect(output.contains("Rate not held"))
    }

    @Test("-report writes one self-contained page that headless Chromium renders: four charts, every line drawn")
    func htmlReport() throws {
        let server = try ServerProcess(["-quiet"])
        defer { server.stop() }
        let page = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString).html")
        defer { try? FileManager.default.removeItem(at: page) }
        let (status, _, errors) = try run("perftest", ["-host", "127.0.0.1:\(server.port)", "-clients", "10", "-duration", "2",
                                                       "-rate", "5000", "-report", page.path])
        #expect(status == 0, "\(errors)")
        let html = try String(contentsOf: page, encoding: .utf8)
        // Nothing to fetch: no external scripts, styles, images or fonts.
        for reference in ["src=", "href=", "url(", "@import", "<link"] { #expect(!html.contains(reference), "\(reference)") }
        let paths = ProcessInfo.processInfo.environment["PATH", default: "/usr/bin:/bin"].split(separator: ":")
        let chromium = ["chromium", "chromium-browser", "google-chrome"].lazy.flatMap { name in paths.map { "\($0)/\(name)" } }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        let browser = try #require(chromium, "headless Chromium is needed to render the report (Debian: apt-get install chromium)")
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let (rendered, dom, _) = try run(executable: URL(fileURLWithPath: browser), [
            "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile.path)", "--dump-dom", page.absoluteString,
        ], limit: 90)
        #expect(rendered == 0)
        // The page's script records, after layout, each chart's lines and their drawn lengths.
        let marker = "data-drawn=\""
        let start = try #require(dom.range(of: marker), "no layout record in the rendered page").upperBound
        let end = try #require(dom[start...].firstIndex(of: "\""))
        let json = dom[start..<end].replacingOccurrences(of: "&quot;", with: "\"")
        struct Chart: Decodable { var id: String; var lines: [Double] }
        let charts = try JSONDecoder().decode([Chart].self, from: Data(json.utf8))
        #expect(charts.map(\.id) == ["percentiles", "throughput", "latency-over-time", "errors"])
        #expect(charts.first?.lines.count == 2)  // latency from intended send, and service time
        for chart in charts { #expect(!chart.lines.isEmpty && chart.lines.allSatisfy { $0 > 100 }, "\(chart.id): \(chart.lines)") }
    }

    @Test("-procs 3: three perftest processes share the clients and the rate; one merged result")
    func processes() throws {
        let server = try ServerProcess(["-quiet"])
        defer { server.stop() }
        let (status, output, errors, result) = try self.runPerfTest(
            ["-host", "127.0.0.1:\(server.port)", "-clients", "31", "-duration", "1", "-procs", "3", "-rate", "3000"])
        #expect(status == 0, "\(errors)")
        #expect(output.contains("31 clients over 3 processes"))
        let r = try #require(result)
        #expect(r.stats.connected == 31 && r.stats.requested == 31)
        #expect(r.stats.lost == 0)
        #expect(abs(Double(r.stats.sent) - 3000) < 150, "sent \(r.stats.sent) in 1 s at 3,000/s")
        #expect(r.latency?.samples == r.stats.received)
        #expect(output.contains("Rate:            asked 3000 msg/s"))
    }

    struct ConnectResult: Decodable {
        struct Stats: Decodable { var sent, received, refused, handshakeFailed, connected, backlogAtEnd: Int }
        var stats: Stats
        var connectRate: Double?
        var receivedPerSecond: Double
    }

    func connectRun(_ arguments: [String]) throws -> (Int32, String, ConnectResult?) {
        let (status, output, _, result) = try self.runPerfTest(["-mode", "connect"] + arguments, as: ConnectResult.self)
        return (status, output, result)
    }

    @Test("-connect-rate opens at its rate; refusals and refused handshakes are counted by cause")
    func connectRate() throws {
        let server = try ServerProcess(["-quiet"])
        defer { server.stop() }
        let (status, output, result) = try self.connectRun(["-host", "127.0.0.1:\(server.port)", "-clients", "20", "-duration", "2",
                                                            "-connect-rate", "300"])
        #expect(status == 0)
        let r = try #require(result)
        #expect(r.connectRate == 300)
        #expect(abs(Double(r.stats.received) - 600) < 30, "opened \(r.stats.received) in 2 s at 300/s")
        #expect(r.stats.backlogAtEnd == 0)
        #expect(output.contains("Connect rate:    asked 300/s"))
        // A path the server refuses to upgrade (404): every opening is a failed handshake.
        let (_, _, refusedPath) = try self.connectRun(["-host", "127.0.0.1:\(server.port)", "-path", "/nope", "-clients", "5",
                                                       "-duration", "0.5", "-connect-rate", "100"])
        let h = try #require(refusedPath)
        #expect(h.stats.handshakeFailed >= 40 && h.stats.received == 0 && h.stats.refused == 0, "\(h.stats)")
        // Nothing listening: every opening is refused.
        let closed = try ServerProcess(["-quiet"])
        let port = closed.port
        closed.stop()
        let (_, _, nobody) = try self.connectRun(["-host", "127.0.0.1:\(port)", "-clients", "5", "-duration", "0.5", "-connect-rate", "100"])
        let n = try #require(nobody)
        #expect(n.stats.refused >= 40 && n.stats.received == 0 && n.stats.handshakeFailed == 0, "\(n.stats)")
    }

    /// Echoes, and notes each connection's peer address.
    final class PeerEcho: WebSocketHandler {
        let peers = Mutex<[String]>([])
        func webSocketDidOpen(_ socket: WebSocket, request: HTTPRequest) {
            let host = socket.remoteAddress?.host ?? "?"
            self.peers.withLock { $0.append(host) }
        }
        func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) { socket.send(message.opcode, message.bytes) }
    }

    @Test("past 25,000 clients in all against loopback, clients connect from 127.0.0.1, .2, … 25,000 each")
    func sourceAddresses() throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let handler = PeerEcho()
        let server = WebSocketServer(group: group, configuration: WebSocketConfiguration(), handler: handler)
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        // As the last 5 and the first 5 of two neighbouring addresses' shares in a -procs run of 30,000.
        let (status, output, errors) = try run("perftest", ["-host", "127.0.0.1:\(port)", "-clients", "10", "-duration", "0.5",
                                                           "-client-offset", "24995", "-total-clients", "30000"])
        #expect(status == 0, "\(errors)")
        #expect(output.contains("Connected:       10/10"))
        let peers = handler.peers.withLock { $0 }
        #expect(peers.filter { $0 == "127.0.0.1" }.count == 5)
        #expect(peers.filter { $0 == "127.0.0.2" }.count == 5)
        // Below the threshold everyone connects from the kernel's choice, 127.0.0.1.
        handler.peers.withLock { $0.removeAll() }
        _ = try run("perftest", ["-host", "127.0.0.1:\(port)", "-clients", "4", "-duration", "0.2"])
        #expect(handler.peers.withLock { $0 } == Array(repeating: "127.0.0.1", count: 4))
    }

    @Test("a negative value is checked as a value, as Go's flag package reads it")
    func negativeValue() throws {
        let (status, _, errors) = try run("perftest", ["-duration", "-1"])
        #expect(status == 2)
        #expect(errors.hasPrefix("perftest: -duration -1.0: expected (0, 86400] s"))
    }

    @Test("an open-file limit too low for 5,000 clients: the suite says so before it starts a server")
    func suiteNeedsDescriptors() throws {
        let prlimit = URL(fileURLWithPath: "/usr/bin/prlimit")
        try #require(FileManager.default.isExecutableFile(atPath: prlimit.path), "util-linux's prlimit is missing")
        let perftest = ServerProcess.binary("perftest").path
        let (status, output, errors) = try run(executable: prlimit, ["--nofile=1000:3000", perftest, "suite", "-scale", "0.01"])
        #expect(status == 1)
        #expect(!output.contains("started echoserver"))
        #expect(errors.hasPrefix("perftest: 5000 clients need about 5064 open files, but this process may open 3000"))
    }

    @Test("the suite starts its own echoserver and prints the five rows, all connected, none lost")
    func suite() throws {
        let (status, output, errors) = try run("perftest", ["suite", "-scale", "0.03"])
        #expect(status == 0, "\(errors)")
        let rows = output.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| Test") }
        #expect(rows.count == 5)
        for name in ["Baseline", "Scale Up", "Stress", "Async", "Blast"] {
            #expect(rows.contains { $0.hasPrefix("| \(name) |") }, "\(name) missing")
        }
        // Every row connected all its clients (no "n/m" in the clients column), with no loss and no error.
        #expect(rows.first { $0.hasPrefix("| Stress |") }?.contains("| 5,000 |") == true)
        for row in rows where !row.hasPrefix("| Blast") {
            #expect(row.contains("| 0.00% | 0 |"), "\(row)")
        }
    }

    @Test("the suite's echoserver does not outlive a perftest that is killed outright")
    func suiteServerEndsWithPerfTest() throws {
        // The echoserver inherits perftest's standard error: that pipe ends when both are gone.
        let child = try Child("perftest", ["suite"], limit: 120)
        let text = child.readOutput(untilContains: "started echoserver (pid ")
        let pid = text.split(separator: "(pid ").dropFirst().first.flatMap { Int32($0.prefix { $0.isNumber }) }
        kill(child.pid, SIGKILL)
        let server = try #require(pid, "no echoserver pid in: \(text)")
        // If the server lived on, its copy of the pipe would keep the read below from ever ending: kill
        // it after a while, so that the test fails instead of hanging.
        let outlived = Locked(false)
        let watchdog = DispatchWorkItem {
            outlived.withLock { $0 = true }
            kill(server, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + 20, execute: watchdog)
        _ = child.finish()
        watchdog.cancel()
        #expect(!outlived.withLock { $0 }, "echoserver \(server) was still running 20 s after perftest was killed")
    }
}
