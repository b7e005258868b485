// Protocol hot paths of StrandsWS, with allocation counts: unmasking, UTF-8 validation, frame parsing
// and frame encoding. Throughput is bytes per iteration divided by the wall-clock time per iteration.
import Benchmark
import StrandsWS

#if canImport(Glibc)
import Glibc
#endif

let megabyte = 1 << 20

/// JSON-like text: mostly ASCII with an accented word every ~100 bytes (about 2 % non-ASCII bytes).
func asciiHeavyText(_ count: Int) -> [UInt8] {
    let unit = Array("{\"type\":\"echo\",\"id\":12345,\"ts\":1732780800.123456,\"data\":\"xxxxxxxxxxxxxxxxxxxxxxxx\",\"name\":\"Zoë\"},".utf8)
    var out: [UInt8] = []
    while out.count < count { out += unit }
    // Cut at a character boundary so the text stays valid.
    var end = count
    while end > 0 && out[end] & 0xC0 == 0x80 { end -= 1 }
    return Array(out[0..<end])
}

/// Mixed scripts: every character two to four bytes long.
func multilingualText(_ count: Int) -> [UInt8] {
    let unit = Array("κόσμε日本語テキスト😀🚀Ünïcödé".utf8)
    var out: [UInt8] = []
    while out.count + unit.count <= count { out += unit }
    return out
}

/// `count` masked binary frames of `size` bytes each, back to back, as a client sends them.
func maskedFrames(count: Int, size: Int) -> [UInt8] {
    var out: [UInt8] = []
    let payload = [UInt8](repeating: 0x78, count: size)
    for i in 0..<count {
        var header = [UInt8](repeating: 0, count: FrameHeader.maxSize)
        let key = UInt32(0x9E37_79B9) &* UInt32(i + 1)
        let length = header.withUnsafeMutableBytes {
            FrameHeader.write(opcode: .binary, payloadLength: size, maskKey: key, into: $0.baseAddress!)
        }
        var body = payload
        body.withUnsafeMutableBytes { _ = Masking.apply(key: key, phase: 0, to: $0) }
        out += header[0..<length] + body
    }
    return out
}

struct CountingSink: FrameParserSink {
    var messages = 0
    var bytes = 0
    mutating func parser(didReceiveMessage opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
        self.messages += 1
        self.bytes += payload.count
        return true
    }
    mutating func parser(didReceiveControl opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool { true }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.mallocCountTotal, .wallClock],
        warmupIterations: 5,
        maxDuration: .seconds(3),
        maxIterations: 5_000
    )

    Benchmark("Baseline: empty iteration") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(0) }
    }

    echoBenchmarks()

    Benchmark("Unmask 1 MiB in place") { benchmark in
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: megabyte, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0x5A)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(Masking.apply(key: 0x3712_ABCD, phase: 1, to: buffer))
        }
    }

    Benchmark("UTF-8 validate 1 MiB ASCII-heavy JSON text") { benchmark in
        let text = asciiHeavyText(megabyte)
        precondition(text.withUnsafeBytes { UTF8Validator.isValid($0) }, "the sample must be valid to time it all")
        precondition(text.count(where: { $0 >= 0x80 }) * 100 / text.count >= 1, "about 2 % non-ASCII")
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            text.withUnsafeBytes { blackHole(UTF8Validator.isValid($0)) }
        }
    }

    Benchmark("UTF-8 validate 1 MiB multilingual text") { benchmark in
        let text = multilingualText(megabyte)
        precondition(text.withUnsafeBytes { UTF8Validator.isValid($0) }, "the sample must be valid to time it all")
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            text.withUnsafeBytes { blackHole(UTF8Validator.isValid($0)) }
        }
    }

    // Every frame arrives whole in the buffer: the parser hands each over in place. Unmasking in place
    // changes payloads run to run, which binary frames do not mind.
    Benchmark("Parse 1000 masked 64-byte binary frames (one buffer)") { benchmark in
        var frames = maskedFrames(count: 1000, size: 64)
        var parser = FrameParser(expectMasked: true, maxMessageSize: megabyte)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var sink = CountingSink()
            frames.withUnsafeMutableBytes { blackHole(parser.parse($0, into: &sink)) }
            blackHole(sink.messages)
        }
        benchmark.stopMeasurement()
        parser.release()
    }

    // What a server does per echoed message: header into the cork buffer, payload copied behind it.
    Benchmark("Encode 1000 64-byte server frames into a reused buffer") { benchmark in
        let payload = [UInt8](repeating: 0x78, count: 64)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000 * (64 + FrameHeader.maxSize), alignment: 16)
        defer { out.deallocate() }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var offset = 0
            payload.withUnsafeBytes { source in
                for _ in 0..<1000 {
                    offset += FrameHeader.write(opcode: .binary, payloadLength: 64, maskKey: nil, into: out.baseAddress! + offset)
                    (out.baseAddress! + offset).copyMemory(from: source.baseAddress!, byteCount: 64)
                    offset += 64
                }
            }
            blackHole(offset)
        }
    }

    // What a client does per message: header, then the payload copied and masked behind it.
    Benchmark("Encode 1000 64-byte masked client frames into a reused buffer") { benchmark in
        let payload = [UInt8](repeating: 0x78, count: 64)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000 * (64 + FrameHeader.maxSize), alignment: 16)
        defer { out.deallocate() }
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            var offset = 0
            let key = UInt32(truncatingIfNeeded: i) &* 0x9E37_79B9
            payload.withUnsafeBytes { source in
                for _ in 0..<1000 {
                    offset += FrameHeader.write(opcode: .binary, payloadLength: 64, maskKey: key, into: out.baseAddress! + offset)
                    let body = UnsafeMutableRawBufferPointer(start: out.baseAddress! + offset, count: 64)
                    Masking.copy(source, maskedWith: key, into: body)
                    offset += 64
                }
            }
            blackHole(offset)
        }
    }
}

// MARK: - Echo round trips through a WebSocketServer, allocations per message

/// The echoserver's handler: every message back with its own opcode.
final class EchoHandler: WebSocketHandler {
    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        socket.send(message.opcode, message.bytes)
    }
}

/// A client that runs a batch of round trips when asked and posts a semaphore when the batch is done.
final class BatchClient: WebSocketHandler, @unchecked Sendable {  // Safe: fields touched on the client loop.
    let payload: [UInt8]
    let opcode: Opcode
    let done: UnsafeMutablePointer<sem_t>
    var socket: WebSocket?
    var remaining = 0

    init(payload: [UInt8], opcode: Opcode) {
        self.payload = payload
        self.opcode = opcode
        self.done = .allocate(capacity: 1)
        sem_init(self.done, 0, 0)
    }

    func start(_ count: Int) {
        self.remaining = count
        if count == 0 {
            sem_post(self.done)
            return
        }
        self.payload.withUnsafeBytes { _ = self.socket?.send(self.opcode, $0) }
    }

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        self.remaining -= 1
        if self.remaining > 0 {
            self.payload.withUnsafeBytes { _ = socket.send(self.opcode, $0) }
        } else {
            sem_post(self.done)
        }
    }
}

/// A WebSocketServer on one loop (CPU 0) and a StrandsWS client on another (CPU 1), one connection.
final class EchoFixture: @unchecked Sendable {  // Safe: built once in setup, then read-only off the loops.
    let serverGroup: LoopGroup
    let clientGroup: LoopGroup
    let client: BatchClient

    /// 64-byte binary messages without compression; with it, JSON text of about 1 KiB, compressed both ways.
    init(compression: WebSocketCompression? = nil) throws {
        self.serverGroup = try LoopGroup(loopCount: 1, pinning: .cpus([0]))
        self.clientGroup = try LoopGroup(loopCount: 1, pinning: .cpus([1]))
        var configuration = WebSocketConfiguration()
        configuration.compression = compression
        if compression == nil {
            self.client = BatchClient(payload: [UInt8](repeating: 0x78, count: 64), opcode: .binary)
        } else {
            self.client = BatchClient(payload: jsonEvents(1024), opcode: .text)
        }
        let server = WebSocketServer(group: self.serverGroup, configuration: configuration, handler: EchoHandler())
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let loop = self.clientGroup.loops[0]
        let client = self.client
        let clientConfiguration = configuration
        loop.execute {
            WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/ws/bench", on: loop, configuration: clientConfiguration,
                                    handler: client) { result in
                guard case .success(let socket) = result else { fatalError("connect: \(result)") }
                precondition(socket.isCompressed == (compression != nil), "compression must be agreed to measure it")
                client.socket = socket
                client.start(10_000)  // Warm-up: buffers and arrays reach their size.
            }
        }
        sem_wait(client.done)
    }

    func roundTrips(_ count: Int) {
        let client = self.client
        self.clientGroup.loops[0].execute { client.start(count) }
        sem_wait(client.done)
    }

    func shutdown() {
        self.clientGroup.shutdown()
        self.serverGroup.shutdown()
    }
}

nonisolated(unsafe) var echoFixture: EchoFixture?

let echoBenchmarks: @Sendable () -> Void = {
    Benchmark(
        "WebSocket echo hop only (execute + semaphore, 0 round trips)",
        configuration: .init(metrics: [.mallocCountTotal, .wallClock], maxDuration: .seconds(3), maxIterations: 2_000),
        closure: { benchmark in
            for _ in benchmark.scaledIterations { echoFixture!.roundTrips(0) }
        },
        setup: { echoFixture = try EchoFixture() },
        teardown: { echoFixture?.shutdown(); echoFixture = nil }
    )
    Benchmark(
        "WebSocket echo round trips x1000, 64 B, server and client loops",
        configuration: .init(metrics: [.mallocCountTotal, .wallClock], maxDuration: .seconds(5), maxIterations: 500),
        closure: { benchmark in
            for _ in benchmark.scaledIterations { echoFixture!.roundTrips(1000) }
        },
        setup: { echoFixture = try EchoFixture() },
        teardown: { echoFixture?.shutdown(); echoFixture = nil }
    )
    for (name, compression) in [("shared", WebSocketCompression.shared), ("dedicated", .dedicated)] {
        Benchmark(
            "WebSocket echo round trips x1000, 1 KiB JSON, permessage-deflate \(name)",
            configuration: .init(metrics: [.mallocCountTotal, .wallClock], maxDuration: .seconds(5), maxIterations: 200),
            closure: { benchmark in
                for _ in benchmark.scaledIterations { echoFixture!.roundTrips(1000) }
            },
            setup: { echoFixture = try EchoFixture(compression: compression) },
            teardown: { echoFixture?.shutdown(); echoFixture = nil }
        )
    }
}

/// About `size` bytes of JSON events, as a dashboard or a game sends them: similar keys, varying values.
func jsonEvents(_ size: Int) -> [UInt8] {
    var text = "["
    var index = 0
    while text.utf8.count < size - 120 {
        if index > 0 { text += "," }
        text += "{\"id\":\(index),\"user\":\"user-\(index * 7 % 31)\",\"symbol\":\"SYM\(index % 5)\",\"bid\":\(100 + index * 13 % 97).25}"
        index += 1
    }
    return Array((text + "]").utf8)
}
