import Foundation
import StrandsTestSupport
import StrandsWS
import Testing

/// The guide's first server, as printed in Docs/WebSockets.md, runs and stays up until a signal.
@Suite("The guide's first server", .serialized, .timeLimit(.minutes(1)))
struct GuideExampleTests {
    let clients: LoopGroup
    init() throws { self.clients = try LoopGroup(loopCount: 1) }

    /// The package's root, from this file's path.
    static var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    @Test("the example in the guide is Sources/guide-server/main.swift, character for character")
    func guideMatchesSource() throws {
        let guide = try String(contentsOf: Self.root.appendingPathComponent("Docs/WebSockets.md"), encoding: .utf8)
        let source = try String(contentsOf: Self.root.appendingPathComponent("Sources/guide-server/main.swift"), encoding: .utf8)
        let section = try #require(guide.range(of: "## A server"))
        let open = try #require(guide.range(of: "```swift\n", range: section.upperBound..<guide.endIndex))
        let close = try #require(guide.range(of: "```\n", range: open.upperBound..<guide.endIndex))
        #expect(String(guide[open.upperBound..<close.lowerBound]) == source)
    }

    @Test("it echoes, answers /health, stays up, and on SIGINT closes its clients with 1001 and exits 0")
    func runsUntilSignal() async throws {
        let server = try ServerProcess(binary: "guide-server", arguments: ["0"])
        defer { self.clients.shutdown(); server.stop() }
        let loop = self.clients.loops[0]
        let probe = Probe()
        let socket = try await connectClient(to: "ws://127.0.0.1:\(server.port)/ws/room?lobby", on: loop, handler: probe,
                                             subprotocols: ["chat.v1"]).get()
        #expect(await probe.events.next() == .opened(path: "/ws/room?lobby", subprotocol: "chat.v1"))
        socket.loop.execute { socket.value.send(text: "hello") }
        #expect(await probe.events.next() == .text("hello"))
        let health = await rawExchange(Array("GET /health HTTP/1.1\r\nHost: x\r\n\r\n".utf8), port: server.port, on: loop)
        #expect(String(decoding: health, as: UTF8.self).hasSuffix("{\"status\":\"ok\"}"))
        #expect(server.process.isRunning)  // It did not fall off the end of its top-level code.
        // SIGINT, as Ctrl-C sends, though this test process spawns it with SIGINT blocked: run() unblocks it.
        server.signal(SIGINT)
        #expect(await probe.events.next() == .closed(1001, "server shutting down"))
        #expect(server.waitForExit() == 0)
    }
}
