import StrandsLoop
import Synchronization
import Testing

@Suite("Shutdown")
struct ShutdownTests {
    @Test("shutting a group down closes listeners, streams and timers, and every loop closes cleanly")
    func shutdownLeavesNoHandle() async throws {
        let group = try LoopGroup(loopCount: 2)
        let closedWith = Locked<[String]>([])

        final class Recorder: TCPStreamDelegate, Sendable {
            let closedWith: Locked<[String]>
            init(_ closedWith: Locked<[String]>) { self.closedWith = closedWith }
            func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {}
            func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
                self.closedWith.withLock { $0.append(error?.name ?? "nil") }
            }
        }
        let recorder = Recorder(closedWith)
        let server = try group.listen(host: "127.0.0.1", port: 0) { stream in
            stream.delegate = recorder
            stream.startReading()
        }
        let port = server.port
        let connections = 10
        // Open connections from the group's own loops and keep a repeating timer on each loop.
        let connected: Int = await withCheckedContinuation { continuation in
            let once = Once(continuation)
            let tally = Tally(total: connections) { ok, _ in once.resume(ok) }
            for _ in 0..<connections {
                let loop = group.next()
                loop.execute {
                    TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                        if case .success(let stream) = result {
                            stream.delegate = recorder
                            stream.startReading()
                            tally.record(nil)
                        } else {
                            tally.record("connect failed")
                        }
                    }
                }
            }
        }
        #expect(connected == connections)
        for loop in group.loops {
            _ = loop.runAndWait { loop.scheduleTimer(after: .seconds(60), repeating: .seconds(60)) {} }
        }
        // Accepted streams are counted too: wait until every server side has been accepted.
        let handlesBefore = group.loops.map { loop in loop.runAndWait { loop.handleCount } ?? 0 }
        #expect(handlesBefore.reduce(0, +) >= connections + 2 * 2)

        group.shutdown()

        for loop in group.loops {
            #expect(loop.closeResult == 0, "uv_loop_close on loop \(loop.index)")
            #expect(loop.handleCount == 0)
            #expect(loop.execute {} == false)
        }
        let reasons = closedWith.withLock { $0 }
        // Each client stream closed with ECANCELED; accepted ones too (the server side may still be in
        // the accept queue when shutdown starts, and is then never a stream).
        #expect(reasons.count >= connections)
        #expect(reasons.allSatisfy { $0 == "ECANCELED" })
    }

    @Test("handles asked for during shutdown are refused, so the loop still finishes")
    func noNewHandlesDuringShutdown() async throws {
        let group = try LoopGroup(loopCount: 1)
        let loop = group.loops[0]
        let outcome = Locked<String?>(nil)
        final class Reconnector: TCPStreamDelegate, Sendable {
            let outcome: Locked<String?>
            let port: Int
            init(outcome: Locked<String?>, port: Int) {
                self.outcome = outcome
                self.port = port
            }
            func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {}
            func stream(_ stream: TCPStream, didCloseWith error: UVError?) {
                // A client that reconnects on close must not keep a shutting-down loop alive.
                let timer = stream.loop.scheduleTimer(after: .milliseconds(1)) {}
                TCPStream.connect(on: stream.loop, host: "127.0.0.1", port: self.port) { result in
                    self.outcome.withLock { $0 = "\(timer.isDone) \(result)" }
                }
            }
        }
        let server = try loop.listen(host: "127.0.0.1", port: 0) { $0.startReading() }
        let port = server.port
        let ready: Bool = await onLoop(loop) { finish in
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { return finish(false) }
                stream.delegate = Reconnector(outcome: outcome, port: port)
                stream.startReading()
                finish(true)
            }
        }
        #expect(ready)
        group.shutdown()
        #expect(loop.closeResult == 0)
        let text = try #require(outcome.withLock { $0 })
        #expect(text.hasPrefix("true failure"))
        #expect(text.contains("ECANCELED"))
    }
}
