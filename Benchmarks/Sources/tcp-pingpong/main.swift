// tcp-pingpong: the raw-TCP floor under every later layer. Connections each keep one message in flight
// between a client loop and a server loop pinned to different CPUs; round trips per second, latency
// percentiles and CPU time per round trip are printed, the last line as `RESULT key=value ...`.
import Histogram
import StrandsLoop

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var connections = 100
    var duration = 10.0
    var warmup = 1.0
    var size = 64
    var serverCPU = 0
    var clientCPU = 1
    var connect: (host: String, port: Int)?
    var servePort: Int?
}

func printError(_ message: String) {
    let line = "tcp-pingpong: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

func fail(_ message: String) -> Never {
    printError(message)
    exit(2)
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    func value(_ flag: String) -> String {
        guard let next = arguments.popFirst() else { fail("\(flag) needs a value") }
        return next
    }
    func int(_ flag: String, _ range: ClosedRange<Int>) -> Int {
        let text = value(flag)
        guard let n = Int(text), range.contains(n) else { fail("\(flag) \(text): expected \(range)") }
        return n
    }
    func seconds(_ flag: String) -> Double {
        let text = value(flag)
        guard let n = Double(text), n >= 0, n <= 3600 else { fail("\(flag) \(text): expected 0...3600 seconds") }
        return n
    }
    while let flag = arguments.popFirst() {
        switch flag {
        case "-c", "--connections": options.connections = int(flag, 1...20_000)
        case "-d", "--duration": options.duration = seconds(flag)
        case "-w", "--warmup": options.warmup = seconds(flag)
        case "-s", "--size": options.size = int(flag, 1...Loop.readBufferSize)
        case "--server-cpu": options.serverCPU = int(flag, 0...1023)
        case "--client-cpu": options.clientCPU = int(flag, 0...1023)
        case "--serve": options.servePort = int(flag, 0...65535)
        case "--connect":
            let text = value(flag)
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
                fail("--connect \(text): expected HOST:PORT")
            }
            options.connect = (String(text[..<colon]), port)
        case "-h", "--help":
            print("""
                usage: tcp-pingpong [-c connections] [-d seconds] [-w warmup-seconds] [-s bytes]
                                    [--server-cpu N] [--client-cpu N] [--connect HOST:PORT | --serve PORT]
                Without --connect or --serve, runs an echo server loop and a client loop in this process.
                """)
            exit(0)
        default: fail("unknown flag \(flag) (try --help)")
        }
    }
    return options
}

/// `x` with `digits` decimals (no Foundation here).
func fixed(_ x: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let n = Int((x * scale).rounded())
    let whole = n / Int(scale), fraction = abs(n % Int(scale))
    var text = String(fraction)
    while text.count < digits { text = "0" + text }
    return digits == 0 ? "\(whole)" : "\(n < 0 && whole == 0 ? "-" : "")\(whole).\(text)"
}

@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

func threadCPUSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

func processCPUSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Echoes whatever arrives and counts the bytes; one instance serves every connection of one loop.
final class Echo: TCPStreamDelegate, @unchecked Sendable {  // Safe: used on the one server loop only.
    var bytes = 0
    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        self.bytes += bytes.count
        try? stream.write(bytes)
    }
}

/// State shared by every client connection on the client loop. Loop-confined.
final class Run {
    let size: Int
    let payload: UnsafeMutableRawBufferPointer
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    var roundTrips = 0
    var recording = false
    var stopping = false
    var open = 0
    var errors = 0
    var finished: (() -> Void)?

    init(size: Int) {
        self.size = size
        self.payload = .allocate(byteCount: size, alignment: 8)
        self.payload.initializeMemory(as: UInt8.self, repeating: UInt8(ascii: "x"))
    }
}

/// One connection: send `size` bytes, wait for `size` bytes back, record the time, repeat.
final class PingClient: TCPStreamDelegate {
    let run: Run
    var sentAt: UInt64 = 0
    var pending = 0

    init(run: Run) { self.run = run }

    func send(_ stream: TCPStream) {
        self.sentAt = monotonicNanoseconds()
        do { try stream.write(UnsafeRawBufferPointer(self.run.payload)) } catch { self.run.errors += 1 }
    }

    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        self.pending += bytes.count
        guard self.pending >= self.run.size else { return }
        self.pending -= self.run.size
        if self.run.recording {
            _ = self.run.histogram.record(monotonicNanoseconds() - self.sentAt)
            self.run.roundTrips += 1
        }
        if self.run.stopping {
            stream.close()
        } else {
            self.send(stream)
        }
    }

    func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
        if error != nil && !self.run.stopping { self.run.errors += 1 }
        self.run.open -= 1
        if self.run.open == 0 { self.run.finished?() }
    }
}

struct Report: Sendable {
    var roundTrips: Int
    var seconds: Double
    var p50: UInt64, p90: UInt64, p99: UInt64, max: UInt64
    var errors: Int
    var clientCPU: Double
}

func runClient(on loop: Loop, host: String, port: Int, options: Options) -> Report {
    let done = Locked<Report?>(nil)
    let box = LoopBound(Run(size: options.size), loop: loop)
    loop.execute {
        let run = box.value
        let cpuAtStart = threadCPUSeconds()
        var recordStart: (time: UInt64, cpu: Double) = (0, 0)
        var recordEnd: (time: UInt64, cpu: Double) = (0, 0)
        run.open = options.connections
        run.finished = {
            let seconds = Double(recordEnd.time - recordStart.time) / 1e9
            let report = Report(
                roundTrips: run.roundTrips, seconds: seconds,
                p50: run.histogram.valueAtPercentile(50), p90: run.histogram.valueAtPercentile(90),
                p99: run.histogram.valueAtPercentile(99), max: run.histogram.max,
                errors: run.errors, clientCPU: recordEnd.cpu - recordStart.cpu)
            done.withLock { $0 = report }
        }
        _ = cpuAtStart
        for _ in 0..<options.connections {
            TCPStream.connect(on: loop, host: host, port: port, timeout: .seconds(10)) { result in
                switch result {
                case .success(let stream):
                    let client = PingClient(run: run)
                    stream.delegate = client
                    stream.startReading()
                    if run.stopping { stream.close() } else { client.send(stream) }
                case .failure(let error):
                    printError("\(error)")
                    run.errors += 1
                    run.open -= 1
                    if run.open == 0 { run.finished?() }
                }
            }
        }
        loop.scheduleTimer(after: .milliseconds(Int64(options.warmup * 1000))) {
            run.recording = true
            recordStart = (monotonicNanoseconds(), threadCPUSeconds())
        }
        loop.scheduleTimer(after: .milliseconds(Int64((options.warmup + options.duration) * 1000))) {
            recordEnd = (monotonicNanoseconds(), threadCPUSeconds())
            run.recording = false
            run.stopping = true
        }
    }
    while true {
        if let report = done.current { return report }
        usleep(50_000)  // The main thread only waits for the end of a timed run.
    }
}

let options = parseOptions()
do {
    try System.raiseOpenFileLimit()
    if let port = options.servePort {
        let group = try LoopGroup(loopCount: 1, pinning: .cpus([options.serverCPU]))
        let server = try group.listen(host: "127.0.0.1", port: port) { stream in
            stream.delegate = Echo()
            stream.startReading()
        }
        print("tcp-pingpong: echo server on 127.0.0.1:\(server.port), CPU \(options.serverCPU)")
        fflush(nil)
        while true { pause() }
    }

    let clientGroup = try LoopGroup(loopCount: 1, pinning: .cpus([options.clientCPU]))
    var serverGroup: LoopGroup?
    let echo = Echo()
    let host: String
    let port: Int
    if let target = options.connect {
        (host, port) = target
    } else {
        let group = try LoopGroup(loopCount: 1, pinning: .cpus([options.serverCPU]))
        let server = try group.listen(host: "127.0.0.1", port: 0) { stream in
            stream.delegate = echo
            stream.startReading()
        }
        serverGroup = group
        (host, port) = ("127.0.0.1", server.port)
    }
    let serverLoop = serverGroup?.loops[0]
    let serverCPUStart = serverLoop?.runAndWait { threadCPUSeconds() } ?? 0
    let processCPUStart = processCPUSeconds()
    print("tcp-pingpong: \(options.connections) connections, \(options.size)-byte messages, "
        + "\(options.duration) s after \(options.warmup) s warm-up, target \(host):\(port)"
        + (serverLoop != nil ? ", server loop on CPU \(options.serverCPU)" : "")
        + ", client loop on CPU \(options.clientCPU)")
    let report = runClient(on: clientGroup.loops[0], host: host, port: port, options: options)
    let serverCPU = (serverLoop?.runAndWait { threadCPUSeconds() } ?? 0) - serverCPUStart
    let echoed = (serverLoop?.runAndWait { echo.bytes } ?? 0) / options.size
    let processCPU = processCPUSeconds() - processCPUStart
    clientGroup.shutdown()
    serverGroup?.shutdown()

    let rate = Double(report.roundTrips) / max(report.seconds, 1e-9)
    func ms(_ ns: UInt64) -> String { fixed(Double(ns) / 1e6, 3) }
    let clientPer = report.clientCPU / Double(max(report.roundTrips, 1)) * 1e6
    print("round trips/s: \(Int(rate))  (\(report.roundTrips) in \(fixed(report.seconds, 2)) s)")
    print("latency ms: p50 \(ms(report.p50))  p90 \(ms(report.p90))  p99 \(ms(report.p99))  max \(ms(report.max))")
    print("client loop CPU: \(fixed(clientPer, 2)) µs per round trip")
    var result = "RESULT rtt_per_sec=\(Int(rate)) p50_us=\(report.p50 / 1000) p90_us=\(report.p90 / 1000) "
        + "p99_us=\(report.p99 / 1000) max_us=\(report.max / 1000) errors=\(report.errors) "
        + "client_cpu_us_per_rt=\(fixed(clientPer, 2))"
    if serverLoop != nil {
        // Whole run (warm-up included) against every message the server echoed in it.
        let serverPer = serverCPU / Double(max(echoed, 1)) * 1e6
        print("server loop CPU: \(fixed(serverPer, 2)) µs per round trip")
        result += " server_cpu_us_per_rt=\(fixed(serverPer, 2))"
    }
    _ = processCPU
    print(result)
    if report.errors > 0 { exit(1) }
} catch {
    fail("\(error)")
}
