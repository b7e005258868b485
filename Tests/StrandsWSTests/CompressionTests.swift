import StrandsTestSupport
import Testing
@testable import StrandsWS

/// permessage-deflate (RFC 7692): negotiation of every parameter, the zlib streams, and both modes
/// over loopback, on the wire and between our own client and server.
@Suite("permessage-deflate")
struct CompressionNegotiationTests {
    func offers(_ header: String) -> [ExtensionOffer] { ExtensionOffer.parse([header])! }

    @Test("shared mode answers a browser's offer with no context takeover both ways: stateless")
    func sharedAnswer() throws {
        let (answer, agreement) = try #require(WebSocketCompression.shared.answer(offers("permessage-deflate; client_max_window_bits")))
        #expect(answer.description == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        #expect(agreement.isStateless && agreement.sendWindowBits == 15)
    }

    @Test("dedicated mode keeps context takeover and narrows the client's window to its own")
    func dedicatedAnswer() throws {
        let (answer, agreement) = try #require(WebSocketCompression.dedicated.answer(offers("permessage-deflate; client_max_window_bits")))
        #expect(answer.description == "permessage-deflate; client_max_window_bits=12")
        #expect(agreement == DeflateAgreement(sendTakeover: true, sendWindowBits: 12, receiveTakeover: true, receiveWindowBits: 12))
        // Without client_max_window_bits the client may use 15; the answer must not name it.
        let (plain, full) = try #require(WebSocketCompression.dedicated.answer(offers("permessage-deflate")))
        #expect(plain.description == "permessage-deflate")
        #expect(full.receiveWindowBits == 15 && full.sendWindowBits == 12)
        // The client's own requests are honoured.
        let (asked, limited) = try #require(WebSocketCompression.dedicated.answer(
            offers("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10")))
        #expect(asked.description == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10")
        #expect(limited == DeflateAgreement(sendTakeover: false, sendWindowBits: 10, receiveTakeover: false, receiveWindowBits: 15))
    }

    @Test("server_max_window_bits=8 is answered 8 and deflated with 9 (zlib's raw deflate starts there)")
    func windowEight() throws {
        let (answer, agreement) = try #require(WebSocketCompression.shared.answer(offers("permessage-deflate; server_max_window_bits=8")))
        #expect(answer.description.hasSuffix("server_max_window_bits=8"))
        #expect(agreement.sendWindowBits == 9)
        #expect(DeflateStream(level: 6, windowBits: 8, memoryLevel: 8) == nil)  // Why: zlib refuses 8.
        #expect(DeflateStream(level: 6, windowBits: 9, memoryLevel: 8) != nil)
    }

    @Test("malformed offers are declined, not failed, and the next offer is taken", arguments: [
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=7", "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010", "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits", "permessage-deflate; client_max_window_bits=1x",
        "permessage-deflate; server_no_context_takeover=1", "permessage-deflate; x_unknown",
        "permessage-deflate; client_max_window_bits=9; client_max_window_bits=10",
    ])
    func malformedDeclined(_ header: String) throws {
        #expect(WebSocketCompression.shared.answer(offers(header)) == nil)
        let (answer, _) = try #require(WebSocketCompression.dedicated.answer(offers(header + ", permessage-deflate; client_max_window_bits=10")))
        #expect(answer.description == "permessage-deflate; client_max_window_bits=10")
    }

    @Test("a quoted window size is its token")
    func quotedValue() throws {
        let (answer, _) = try #require(WebSocketCompression.dedicated.answer(offers("permessage-deflate; client_max_window_bits=\"9\"")))
        #expect(answer.description == "permessage-deflate; client_max_window_bits=9")
    }

    @Test("the client offers what its mode needs, then a fallback")
    func clientOffers() {
        #expect(WebSocketCompression.shared.offers().map(\.description) == [
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits",
            "permessage-deflate; client_max_window_bits",
        ])
        #expect(WebSocketCompression.dedicated.offers().map(\.description) == [
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits",
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
        ])
    }

    @Test("the client accepts valid answers and refuses malformed ones")
    func clientAccepts() throws {
        let dedicated = WebSocketCompression.dedicated
        let first = try dedicated.accept(offers("permessage-deflate; server_max_window_bits=12; client_max_window_bits=8")[0]).get()
        #expect(first == DeflateAgreement(sendTakeover: true, sendWindowBits: 9, receiveTakeover: true, receiveWindowBits: 12))
        // An answer to the second offer (no server window named): this side promised no takeover.
        let second = try dedicated.accept(offers("permessage-deflate")[0]).get()
        #expect(!second.sendTakeover && second.receiveTakeover && second.receiveWindowBits == 15)
        let stateless = try WebSocketCompression.shared.accept(
            offers("permessage-deflate; server_no_context_takeover; client_no_context_takeover")[0]).get()
        #expect(stateless.isStateless)
        for bad in ["permessage-deflate; client_max_window_bits", "permessage-deflate; foo",
                    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                    "permessage-deflate; server_max_window_bits=20"] {
            #expect(throws: ExtensionNegotiationError.self, "\(bad)") { try dedicated.accept(offers(bad)[0]).get() }
        }
    }

    @Test("settings out of range are named")
    func settingsChecked() {
        #expect(WebSocketCompression.shared.problem == nil && WebSocketCompression.dedicated.problem == nil)
        #expect(WebSocketCompression(mode: .shared, windowBits: 16).problem != nil)
        #expect(WebSocketCompression(mode: .dedicated, memoryLevel: 0).problem != nil)
        #expect(WebSocketCompression(mode: .shared, level: 10).problem != nil)
    }
}

@Suite("permessage-deflate streams")
struct DeflateStreamTests {
    func json(_ index: Int) -> [UInt8] {
        Array("{\"id\":\(index),\"user\":\"user-\(index % 17)\",\"event\":\"price\",\"symbol\":\"ACME\",\"bid\":\(100 + index % 9).25,\"ask\":\(101 + index % 7).5,\"tags\":[\"a\",\"b\",\"c\"]}".utf8)
    }

    func roundTrip(_ message: [UInt8], _ compressor: DeflateStream, _ inflater: DeflateStream, takeover: Bool,
                   compressed: inout RawBuffer, inflated: inout RawBuffer) -> (size: Int, back: [UInt8]) {
        #expect(message.withUnsafeBytes { compressor.compress($0, into: &compressed) })
        if !takeover {
            compressor.reset()
            inflater.reset()
        }
        let result = inflater.decompress(compressed.bytes, limit: 1 << 20, keepsHistory: takeover, into: &inflated)
        #expect(result == .complete)
        return (compressed.count, Array(inflated.bytes))
    }

    @Test("messages survive compression with and without context takeover; takeover shrinks repeats")
    func roundTrips() throws {
        var compressed = RawBuffer(), inflated = RawBuffer()
        defer { compressed.free(); inflated.free() }
        for takeover in [false, true] {
            let compressor = try #require(DeflateStream(level: 6, windowBits: 12, memoryLevel: 5))
            let inflater = try #require(DeflateStream(inflateWindowBits: 12))
            var sizes: [Int] = []
            for index in 0..<200 {
                let message = self.json(index)
                let (size, back) = self.roundTrip(message, compressor, inflater, takeover: takeover,
                                                  compressed: &compressed, inflated: &inflated)
                #expect(back == message)
                sizes.append(size)
            }
            if takeover {
                #expect(sizes.dropFirst().max()! < sizes[0] / 2, "\(sizes.prefix(5))")  // Later ones refer back.
            } else {
                #expect(sizes.dropFirst().min()! > sizes[0] / 2)
            }
        }
        // Empty and incompressible messages too.
        let compressor = try #require(DeflateStream(level: 1, windowBits: 15, memoryLevel: 8))
        let inflater = try #require(DeflateStream(inflateWindowBits: 15))
        for message in [[], [], self.json(1), [], pattern(100_000, seed: 3), self.json(1)] {
            #expect(self.roundTrip(message, compressor, inflater, takeover: true, compressed: &compressed, inflated: &inflated).back == message)
            if message.isEmpty { #expect(Array(compressed.bytes) == [0x00]) }  // RFC 7692 §7.2.3.6
        }
    }

    @Test("a decompression bomb stops at the limit: nothing past it is inflated")
    func bomb() throws {
        var compressed = RawBuffer(), inflated = RawBuffer()
        defer { compressed.free(); inflated.free() }
        let compressor = try #require(DeflateStream(level: 9, windowBits: 15, memoryLevel: 9))
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        #expect(zeros.withUnsafeBytes { compressor.compress($0, into: &compressed) })
        #expect(compressed.count < 100_000)  // 64 MiB in about 64 KiB.
        let inflater = try #require(DeflateStream(inflateWindowBits: 15))
        let limit = 1 << 20
        #expect(inflater.decompress(compressed.bytes, limit: limit, keepsHistory: false, into: &inflated) == .tooBig)
        #expect(inflated.count <= limit + 1 && inflated.capacity <= 2 * (limit + 1))
        // Exactly the limit is allowed.
        let exact = [UInt8](repeating: 7, count: limit)
        #expect(exact.withUnsafeBytes { compressor.compress($0, into: &compressed) })
        inflater.reset()
        #expect(inflater.decompress(compressed.bytes, limit: limit, keepsHistory: false, into: &inflated) == .complete)
        #expect(inflated.count == limit)
    }

    @Test("corrupt input is reported, not trusted")
    func corrupt() throws {
        var inflated = RawBuffer()
        defer { inflated.free() }
        let inflater = try #require(DeflateStream(inflateWindowBits: 15))
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0x00, 0x12]
        let result = garbage.withUnsafeBytes { inflater.decompress($0, limit: 1 << 20, keepsHistory: false, into: &inflated) }
        #expect(result == .corrupt("compressed data is corrupt"))
    }

    @Test("RFC 7692's own example: 'Hello' in seven bytes")
    func rfcExample() throws {
        var inflated = RawBuffer()
        defer { inflated.free() }
        let inflater = try #require(DeflateStream(inflateWindowBits: 15))
        let hello: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]  // §7.2.3.1
        #expect(hello.withUnsafeBytes { inflater.decompress($0, limit: 100, keepsHistory: false, into: &inflated) } == .complete)
        #expect(Array(inflated.bytes) == Array("Hello".utf8))
    }
}

/// Echoes every message, with per-message control by prefix ("plain:" never compressed, "force:" always),
/// and answers "count" with what permessage-deflate holds on its loop and connection.
final class DeflateEcho: WebSocketHandler {
    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        let text = message.opcode == .text ? message.text : ""
        if text == "count" {
            let live = socket.shared.deflateState.liveCompressorCount
            socket.send(text: "live=\(live) cold=\(socket.cold != nil) compressed=\(socket.isCompressed)")
        } else if text.hasPrefix("plain:") {
            socket.send(message.opcode, message.bytes, compress: false)
        } else if text.hasPrefix("force:") {
            socket.send(message.opcode, message.bytes, compress: true)
        } else {
            socket.send(message.opcode, message.bytes)
        }
    }
}

@Suite("permessage-deflate over loopback", .serialized, .timeLimit(.minutes(1)))
struct CompressionLoopbackTests {
    static func configuration(_ mode: WebSocketCompression.Mode, _ change: (inout WebSocketCompression) -> Void = { _ in })
        -> WebSocketConfiguration
    {
        var configuration = WebSocketConfiguration()
        var compression = WebSocketCompression(mode: mode)
        change(&compression)
        configuration.compression = compression
        return configuration
    }

    func bigJSON(_ count: Int) -> String {
        var text = "["
        var index = 0
        while text.utf8.count < count {
            text += "{\"id\":\(index),\"name\":\"item \(index % 50)\",\"ok\":true},"
            index += 1
        }
        return text + "0]"
    }

    @Test("our client and server agree it, and large, incompressible and many small messages come back whole",
          arguments: [WebSocketCompression.Mode.shared, .dedicated])
    func echo(_ mode: WebSocketCompression.Mode) async throws {
        let configuration = Self.configuration(mode)
        let serverSide = Probe(echo: true)
        let harness = try Harness(configuration: configuration, handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect(handler: client, configuration: configuration).get()
        _ = await client.events.next()
        _ = await serverSide.events.next()
        let agreed = Events<Bool>()
        socket.loop.execute { agreed.post(socket.value.isCompressed) }
        #expect(await agreed.next())

        let big = self.bigJSON(300_000)
        let noise = pattern(200_000, seed: 9)
        socket.loop.execute {
            socket.value.send(text: big)
            socket.value.send(binary: noise)
        }
        #expect(await serverSide.events.next() == .text(big))
        #expect(await serverSide.events.next() == .binary(noise))
        #expect(await client.events.next() == .text(big))
        #expect(await client.events.next() == .binary(noise))
        let small = (0..<300).map { "{\"seq\":\($0),\"text\":\"\(String(repeating: "hello ", count: 60 + $0 % 7))\"}" }
        socket.loop.execute { for message in small { socket.value.send(text: message) } }
        for message in small { #expect(await client.events.next() == .text(message)) }
    }

    @Test("on the wire: a compressed frame is inflated; short replies go plain, long ones compressed, per message")
    func onTheWire() async throws {
        let harness = try Harness(configuration: Self.configuration(.shared), handler: DeflateEcho())
        defer { harness.shutdown() }
        let hello: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]  // RFC 7692 §7.2.3.1
        let long = Array(self.bigJSON(2000).utf8)
        let raw = await harness.rawBytes(upgradeRequest(extra: [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
            + frame(.text, hello, rsv: 0x4) + frame(.text, long) + frame(.text, Array("plain:".utf8) + long)
            + frame(.text, Array("force:x".utf8)) + frame(.text, Array("count".utf8)) + frame(.close, [0x03, 0xE8]))
        let text = String(decoding: raw, as: UTF8.self)
        #expect(text.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"))
        let frames = serverFrames(after: raw)
        try #require(frames.count == 6, "\(frames.map(\.byte0))")
        #expect(frames[0].byte0 == 0x81 && frames[0].payload == Array("Hello".utf8))  // Below the threshold: plain.
        #expect(frames[1].byte0 == 0xC1 && frames[1].payload.count < long.count / 4)  // RSV1, compressed
        var inflated = RawBuffer()
        defer { inflated.free() }
        let inflater = try #require(DeflateStream(inflateWindowBits: 15))
        #expect(frames[1].payload.withUnsafeBytes { inflater.decompress($0, limit: 1 << 20, keepsHistory: false, into: &inflated) } == .complete)
        #expect(Array(inflated.bytes) == long)
        #expect(frames[2].byte0 == 0x81 && frames[2].payload == Array("plain:".utf8) + long)  // compress: false
        #expect(frames[3].byte0 == 0xC1)  // compress: true, however short
        // A stateless connection holds nothing for compression: no side state, no compressor.
        #expect(frames[4].payload == Array("live=0 cold=false compressed=true".utf8))
        #expect(frames[5].opcode == 0x8)
    }

    @Test("a decompression bomb closes with 1009 (shared and dedicated)", arguments: [WebSocketCompression.Mode.shared, .dedicated])
    func bomb(_ mode: WebSocketCompression.Mode) async throws {
        let harness = try Harness(configuration: Self.configuration(mode), handler: DeflateEcho())
        defer { harness.shutdown() }
        var compressed = RawBuffer()
        defer { compressed.free() }
        let compressor = try #require(DeflateStream(level: 9, windowBits: 15, memoryLevel: 9))
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        #expect(zeros.withUnsafeBytes { compressor.compress($0, into: &compressed) })
        let raw = await harness.rawBytes(upgradeRequest(extra: [("Sec-WebSocket-Extensions", "permessage-deflate")])
            + frame(.binary, Array(compressed.bytes), rsv: 0x4))
        let close = serverFrames(after: raw).last
        #expect(close?.opcode == 0x8)
        #expect(close?.payload.prefix(2) == [0x03, 0xF1])  // 1009
    }

    @Test("dedicated: the server's compressor keeps history (a repeat costs a few bytes), is freed when idle, and restarts cleanly")
    func dedicatedHistory() async throws {
        let configuration = Self.configuration(.dedicated) { $0.idleCompressorTime = .milliseconds(100) }
        let harness = try Harness(configuration: configuration, handler: DeflateEcho())
        defer { harness.shutdown() }
        // The wire first: the same message twice, sent uncompressed; the second echo refers to the first.
        let message = Array(self.bigJSON(3000).utf8)
        let raw = await harness.rawBytes(upgradeRequest(extra: [("Sec-WebSocket-Extensions", "permessage-deflate")])
            + frame(.text, message) + frame(.text, message) + frame(.text, Array("count".utf8)) + frame(.close, [0x03, 0xE8]))
        let frames = serverFrames(after: raw)
        try #require(frames.count == 4)
        #expect(frames[0].byte0 == 0xC1 && frames[1].byte0 == 0xC1)
        #expect(frames[1].payload.count < 64 && frames[1].payload.count < frames[0].payload.count / 5,
                "\(frames[0].payload.count) then \(frames[1].payload.count)")
        #expect(frames[2].payload == Array("live=1 cold=true compressed=true".utf8))

        // Our client: after the sweep frees the server's compressor, messages still round-trip.
        let client = Probe()
        let socket = try await harness.connect(handler: client, configuration: configuration).get()
        _ = await client.events.next()
        let text = self.bigJSON(5000)
        socket.loop.execute { socket.value.send(text: text) }
        #expect(await client.events.next() == .text(text))
        let deadline = ContinuousClock.now + .seconds(5)
        var freed = false
        while !freed && ContinuousClock.now < deadline {
            socket.loop.execute { socket.value.send(text: "count") }
            guard case .text(let answer) = await client.events.next() else { break }
            freed = answer.hasPrefix("live=0")
        }
        #expect(freed)
        socket.loop.execute { socket.value.send(text: text) }
        #expect(await client.events.next() == .text(text))
    }

    @Test("a server without compression declines the offer, and our client then sends plain frames")
    func declined() async throws {
        let serverSide = Probe(echo: true)
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let client = Probe()
        let socket = try await harness.connect(handler: client, configuration: Self.configuration(.dedicated)).get()
        _ = await client.events.next()
        let agreed = Events<Bool>()
        socket.loop.execute {
            agreed.post(socket.value.isCompressed)
            socket.value.send(text: self.bigJSON(1000))
        }
        #expect(await agreed.next() == false)
        #expect(await client.events.next() == .text(self.bigJSON(1000)))
    }
}
