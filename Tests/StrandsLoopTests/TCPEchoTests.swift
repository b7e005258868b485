@testable import StrandsLoop
import Synchronization
import Testing

/// Sends `message`, expects it back byte for byte, then closes.
private final class EchoClient: TCPStreamDelegate {
    let message: [UInt8]
    var received: [UInt8] = []
    var report: ((String?) -> Void)?

    init(message: [UInt8], report: @escaping (String?) -> Void) {
        self.message = message
        self.report = report
    }

    func finish(_ failure: String?) {
        self.report?(failure)
        self.report = nil
    }

    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        self.received.append(contentsOf: bytes)
        if self.received.count >= self.message.count {
            self.finish(self.received == self.message ? nil : "echo differs")
            stream.close()
        }
    }

    func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
        self.finish("closed before the echo: \(String(describing: error))")
    }
}

@Suite("TCP", .serialized)
struct TCPEchoTests {
    init() throws {
        // 1,000 connections are 2,000 descriptors in this one process.
        try System.raiseOpenFileLimit()
    }

    @Test("1,000 connections spread over the loops of a group all echo intact", .timeLimit(.minutes(1)))
    func thousandConnections() async throws {
        let serverGroup = try LoopGroup(loopCount: 2)
        let clientGroup = try LoopGroup(loopCount: 2)
        defer {
            clientGroup.shutdown()
            serverGroup.shutdown()
        }
        let accepted = Locked([0, 0])
        let echo = EchoHandler()
        let server = try serverGroup.listen(host: "127.0.0.1", port: 0) { stream in
            accepted.withLock { $0[stream.loop.index] += 1 }
            stream.delegate = echo
            stream.startReading()
        }
        #expect(server.port > 0)
        let connections = 1000
        let port = server.port
        let (ok, failures): (Int, [String]) = await withCheckedContinuation { continuation in
            let once = Once(continuation)
            let tally = Tally(total: connections) { ok, failures in once.resume((ok, failures)) }
            for index in 0..<connections {
                let loop = clientGroup.next()
                loop.execute {
                    TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                        switch result {
                        case .failure(let error):
                            tally.record("connect: \(error)")
                        case .success(let stream):
                            let size = 1 + index % 3000
                            let message = (0..<size).map { patternByte($0 &+ index) }
                            let client = EchoClient(message: message) { tally.record($0) }
                            stream.delegate = client
                            stream.startReading()
                            do { try stream.write(message) } catch { client.finish("write: \(error)") }
                        }
                    }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(ok == connections)
        let perLoop = accepted.withLock { $0 }
        #expect(perLoop.reduce(0, +) == connections)
        #expect(perLoop.allSatisfy { $0 > 0 }, "SO_REUSEPORT should spread connections: \(perLoop)")
    }

    @Test("a slow reader gets every byte of 16 MiB intact while backpressure bounds the sender's buffer",
          .timeLimit(.minutes(1)))
    func slowReaderIntegrity() async throws {
        let group = try LoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let highWater = 64 * 1024
        let lowWater = 16 * 1024

        final class BoundedEcho: TCPStreamDelegate {
            var maxPending = 0
            let report: @Sendable (Int, Int) -> Void
            init(report: @escaping @Sendable (Int, Int) -> Void) { self.report = report }
            func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
                try? stream.write(bytes)
                self.maxPending = max(self.maxPending, stream.pendingWriteBytes)
            }
            func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
                self.report(self.maxPending, stream.backpressurePauses)
            }
        }
        struct Stats: Sendable {
            var maxPending: Int
            var pauses: Int
        }
        let serverStats = Locked<Stats?>(nil)
        let serverClosed = BlockingQueue<Bool>()
        let server = try group.loops[0].listen(host: "127.0.0.1", port: 0) { stream in
            stream.highWaterMark = highWater
            stream.lowWaterMark = lowWater
            stream.delegate = BoundedEcho { maxPending, pauses in
                serverStats.withLock { $0 = Stats(maxPending: maxPending, pauses: pauses) }
                serverClosed.post(true)
            }
            stream.startReading()
        }

        let total = 16 << 20
        let chunk = 64 * 1024

        /// Writes `total` pattern bytes in chunks, keeping at most a few chunks pending, and reads back
        /// slowly: after each read it stops reading for 2 ms.
        final class SlowClient: TCPStreamDelegate {
            let total: Int
            let chunk: Int
            var sent = 0
            var received = 0
            var mismatchAt: Int?
            var resume: LoopTimer?
            let finish: (String?) -> Void
            init(total: Int, chunk: Int, finish: @escaping (String?) -> Void) {
                self.total = total
                self.chunk = chunk
                self.finish = finish
            }
            func pump(_ stream: TCPStream) {
                var scratch = [UInt8](repeating: 0, count: self.chunk)
                while self.sent < self.total && stream.pendingWriteBytes < 4 * self.chunk && !stream.isClosing {
                    let n = min(self.chunk, self.total - self.sent)
                    for i in 0..<n { scratch[i] = patternByte(self.sent + i) }
                    try? stream.write(scratch[0..<n].withUnsafeBytes { Array($0) })
                    self.sent += n
                }
            }
            func streamDidDrain(_ stream: TCPStream) { self.pump(stream) }
            func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
                for (i, byte) in bytes.enumerated() where self.mismatchAt == nil {
                    if byte != patternByte(self.received + i) { self.mismatchAt = self.received + i }
                }
                self.received += bytes.count
                if self.received >= self.total || self.mismatchAt != nil {
                    stream.close()
                    return
                }
                stream.stopReading()
                self.resume = stream.loop.scheduleTimer(after: .milliseconds(2)) { stream.startReading() }
            }
            func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
                self.resume?.cancel()
                if let mismatchAt = self.mismatchAt {
                    self.finish("byte \(mismatchAt) differs")
                } else if self.received != self.total {
                    self.finish("got \(self.received) of \(self.total) bytes; \(String(describing: error))")
                } else {
                    self.finish(nil)
                }
            }
        }

        let port = server.port
        let clientLoop = group.loops[1]
        let failure: String? = await onLoop(clientLoop) { finish in
            TCPStream.connect(on: clientLoop, host: "127.0.0.1", port: port) { result in
                switch result {
                case .failure(let error): finish("connect: \(error)")
                case .success(let stream):
                    let client = SlowClient(total: total, chunk: chunk) { finish($0) }
                    stream.delegate = client
                    stream.startReading()
                    client.pump(stream)
                }
            }
        }
        #expect(failure == nil)
        _ = serverClosed.wait()
        let stats = try #require(serverStats.withLock { $0 })
        #expect(stats.pauses >= 1, "backpressure never engaged")
        // Reading stops once pending passes the high-water mark, so one read (64 KiB) more is the most.
        #expect(stats.maxPending <= highWater + Loop.readBufferSize, "max pending \(stats.maxPending)")
        server.close()
    }

    @Test("half-close: the peer reads to EOF and can still answer before closing")
    func halfClose() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]

        /// Collects everything, then on EOF answers with the byte count and half-closes too.
        final class CountThenReply: TCPStreamDelegate {
            var count = 0
            func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) { self.count += bytes.count }
            func streamDidReachEOF(_ stream: TCPStream) {
                try? stream.write(Array("\(self.count)".utf8))
                stream.shutdownWrite()
            }
        }
        final class Collect: TCPStreamDelegate {
            var bytes: [UInt8] = []
            let finish: (String) -> Void
            init(finish: @escaping (String) -> Void) { self.finish = finish }
            func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
                self.bytes.append(contentsOf: bytes)
            }
            func streamDidReachEOF(_ stream: TCPStream) {
                self.finish(String(decoding: self.bytes, as: UTF8.self))
                stream.close()
            }
        }
        let server = try loop.listen(host: "127.0.0.1", port: 0) { stream in
            stream.delegate = CountThenReply()
            stream.startReading()
        }
        let port = server.port
        let reply: String = await onLoop(loop) { finish in
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { return finish("connect failed") }
                stream.delegate = Collect { finish($0) }
                stream.startReading()
                try? stream.write([UInt8](repeating: 7, count: 300_000))
                stream.shutdownWrite()
                #expect(throws: UVError.notConnected) { try stream.write([1]) }
            }
        }
        #expect(reply == "300000")
    }

    @Test("IPv6 loopback and host names resolve and connect")
    func ipv6AndNames() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let echo = EchoHandler()
        // "localhost" may resolve to ::1 first; the server listens on both families to accept either.
        let v4 = try loop.listen(host: "127.0.0.1", port: 0) { $0.delegate = echo; $0.startReading() }
        let v6: TCPServer
        do {
            v6 = try loop.listen(host: "::1", port: v4.port) { $0.delegate = echo; $0.startReading() }
        } catch {
            // Hosts without IPv6 loopback (some containers) cannot run this half of the test.
            #expect(error == .addressNotAvailable || error == UVError(code: -97))
            return
        }
        #expect(v6.address.isIPv6)
        #expect(v6.address.description == "[::1]:\(v4.port)")
        for host in ["::1", "[::1]", "localhost", "127.0.0.1"] {
            let port = v4.port
            let result: String? = await onLoop(loop) { finish in
                TCPStream.connect(on: loop, host: host, port: port) { result in
                    switch result {
                    case .failure(let error): finish("\(host): \(error)")
                    case .success(let stream):
                        let client = EchoClient(message: Array("hello \(host)".utf8)) { finish($0) }
                        stream.delegate = client
                        stream.startReading()
                        try? stream.write(client.message)
                    }
                }
            }
            #expect(result == nil)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
