import StrandsTestSupport
import Testing
@testable import StrandsWS

@Suite("FrameParser")
struct FrameParserTests {
    /// A mix of every length encoding and of control frames inside a fragmented message.
    static func small() -> (bytes: [UInt8], events: [Event]) {
        var bytes: [UInt8] = []
        var events: [Event] = []
        for (index, length) in [0, 1, 125, 126, 127, 300].enumerated() {
            let payload = pattern(length, seed: index)
            bytes += frame(.binary, payload, key: 0xA1B2_C3D4 &+ UInt32(index))
            events.append(.message(.binary, payload))
        }
        bytes += frame(.text, Array("héllo ".utf8), fin: false)
        bytes += frame(.ping, Array("are you there".utf8))
        bytes += frame(.continuation, Array("wörld".utf8), fin: false)
        bytes += frame(.pong, [])
        bytes += frame(.continuation, Array("!".utf8))
        events += [.control(.ping, Array("are you there".utf8)), .control(.pong, []),
                   .message(.text, Array("héllo wörld!".utf8))]
        bytes += frame(.close, [0x03, 0xE8] + Array("bye".utf8))
        events.append(.control(.close, [0x03, 0xE8] + Array("bye".utf8)))
        return (bytes, events)
    }

    @Test("a sequence of frames parses the same whether whole or split at any single point")
    func everySplitPoint() {
        let (bytes, expected) = Self.small()
        #expect(parse(bytes).events == expected)
        for cut in 0...bytes.count {
            let (events, result) = parse(bytes, cuts: [cut])
            #expect(result == .consumedAll, "cut at \(cut)")
            #expect(events == expected, "cut at \(cut)")
            if events != expected { break }
        }
    }

    @Test("split at every pair of points inside the headers of a frame with a 64-bit length")
    func everyPairOfSplitsAroundLongHeaders() {
        let payload = pattern(70_000)
        let bytes = frame(.binary, payload) + frame(.text, Array("tail".utf8))
        let expected: [Event] = [.message(.binary, payload), .message(.text, Array("tail".utf8))]
        let interesting = Array(0...16) + Array(70_010...bytes.count)
        for a in interesting {
            for b in interesting where b > a {
                let (events, result) = parse(bytes, cuts: [a, b])
                #expect(result == .consumedAll)
                #expect(events == expected, "cuts \(a), \(b)")
                if events != expected { return }
            }
        }
    }

    @Test("payload lengths at every encoding boundary round-trip, whole and one byte at a time",
          arguments: [0, 125, 126, 65535, 65536])
    func lengthBoundaries(length: Int) {
        let payload = pattern(length, seed: length)
        let bytes = frame(.binary, payload)
        #expect(parse(bytes).events == [.message(.binary, payload)])
        let oneByteAtATime = Array(1..<bytes.count)
        #expect(parse(bytes, cuts: oneByteAtATime).events == [.message(.binary, payload)])
        // The header encodes the length in the shortest form: 2, 4 or 10 bytes before the mask key.
        let headerLength = bytes.count - length - 4
        #expect(headerLength == (length < 126 ? 2 : length <= 65535 ? 4 : 10))
    }

    @Test("a message that arrives whole in one buffer is handed over in place, not copied")
    func wholeFrameIsNotCopied() {
        var bytes = frame(.binary, pattern(1000)) + frame(.text, Array("x".utf8))
        struct Spy: FrameParserSink {
            var pointers: [UnsafeMutableRawPointer?] = []
            mutating func parser(didReceiveMessage opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
                self.pointers.append(payload.baseAddress)
                return true
            }
            mutating func parser(didReceiveControl opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool { true }
        }
        var parser = FrameParser(expectMasked: true, maxMessageSize: 1 << 20)
        var spy = Spy()
        let base = bytes.withUnsafeMutableBytes { buffer in
            _ = parser.parse(buffer, into: &spy)
            return buffer.baseAddress!
        }
        #expect(spy.pointers == [base + 8, base + 8 + 1000 + 6])
        #expect(!parser.isMidMessage)
    }

    @Test("server-role parsing rejects unmasked frames; client-role rejects masked ones")
    func maskingRules() {
        #expect(parse(frame(.text, [0x41], key: nil)).result == .failed(.protocolError, "client frame is not masked"))
        #expect(parse(frame(.text, [0x41]), expectMasked: false).result
            == .failed(.protocolError, "server frame is masked"))
        #expect(parse(frame(.text, [0x41], key: nil), expectMasked: false).events == [.message(.text, [0x41])])
    }

    @Test("protocol violations close with 1002", arguments: [
        (frame(.text, [1], rsv: 4), "reserved bits"),
        (frame(.text, [1], rsv: 1), "reserved bits"),
        (frame(Opcode(rawValue: 3), [1]), "reserved opcode"),
        (frame(Opcode(rawValue: 0xB), []), "reserved opcode"),
        (frame(.ping, [1], fin: false), "fragmented control"),
        (frame(.ping, pattern(126)), "longer than 125"),
        (frame(.continuation, [1]), "continuation frame without a message"),
        (frame(.text, [1], fin: false) + frame(.binary, [2]), "new message inside"),
        (frame(.close, [3]), "1-byte payload"),
        (frame(.close, [0x03, 0xED]), "close code 1005"),
        (frame(.close, [0x03, 0xE7]), "close code 999"),
        (frame(.close, [0x13, 0x88]), "close code 5000"),
    ] as [([UInt8], String)])
    func protocolErrors(bytes: [UInt8], reason: String) {
        guard case .failed(let code, let message) = parse(bytes).result else {
            Issue.record("accepted: \(reason)")
            return
        }
        #expect(code == .protocolError)
        #expect(message.contains(reason), "\(message)")
    }

    @Test("a 64-bit length with its top bit set is a protocol error")
    func hugeLength() {
        let bytes: [UInt8] = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]
        #expect(parse(bytes).result == .failed(.protocolError, "64-bit payload length has its top bit set"))
    }

    @Test("a message over the limit fails with 1009 from its header, before the payload arrives")
    func messageTooBig() {
        let header = Array(frame(.binary, pattern(2000)).prefix(8))  // header + mask only
        #expect(parse(header, maxMessageSize: 1000).result == .failed(.messageTooBig, "message larger than 1000 bytes"))
        // The limit counts every fragment of a message.
        let fragments = frame(.text, pattern(600).map { _ in 0x61 }, fin: false)
            + frame(.continuation, pattern(600).map { _ in 0x62 })
        #expect(parse(fragments, maxMessageSize: 1000).result == .failed(.messageTooBig, "message larger than 1000 bytes"))
        #expect(parse(fragments, maxMessageSize: 1200).events.count == 1)
    }

    @Test("invalid UTF-8 fails with 1007 at the first fragment that breaks it")
    func invalidUTF8FailsFast() {
        // The second fragment holds an impossible sequence; the third never needs to arrive.
        let bytes = frame(.text, Array("κόσμε".utf8), fin: false) + frame(.continuation, [0xF4, 0x90, 0x80, 0x80], fin: false)
        #expect(parse(bytes).result == .failed(.invalidPayload, "text message is not valid UTF-8"))
        // A sequence cut at the end of the message is caught at FIN.
        #expect(parse(frame(.text, [0x41, 0xE2, 0x82])).result == .failed(.invalidPayload, "text message is not valid UTF-8"))
        let truncated = frame(.text, [0x41, 0xE2], fin: false) + frame(.continuation, [0x82])
        #expect(parse(truncated).result == .failed(.invalidPayload, "text message ends inside a UTF-8 sequence"))
        // Valid UTF-8 split across fragments inside a code point is fine.
        let euro = frame(.text, [0xE2], fin: false) + frame(.continuation, [0x82], fin: false) + frame(.continuation, [0xAC])
        #expect(parse(euro).events == [.message(.text, [0xE2, 0x82, 0xAC])])
        // Close reasons are checked too.
        #expect(parse(frame(.close, [0x03, 0xE8, 0xC0, 0x80])).result == .failed(.invalidPayload, "close reason is not valid UTF-8"))
    }

    @Test("after a failure the parser stays failed")
    func failureIsSticky() {
        var parser = FrameParser(expectMasked: true, maxMessageSize: 100)
        var recorder = Recorder()
        var bad = frame(Opcode(rawValue: 3), [])
        var good = frame(.text, [0x41])
        let first = bad.withUnsafeMutableBytes { parser.parse($0, into: &recorder) }
        let second = good.withUnsafeMutableBytes { parser.parse($0, into: &recorder) }
        #expect(first == second)
        #expect(recorder.events.isEmpty)
    }

    @Test("the sink can stop parsing after a close; the rest is left unconsumed")
    func stopAfterClose() {
        var bytes = frame(.close, [0x03, 0xE8]) + frame(.text, [0x41])
        var parser = FrameParser(expectMasked: true, maxMessageSize: 100)
        var recorder = Recorder(stopAfterClose: true)
        let result = bytes.withUnsafeMutableBytes { parser.parse($0, into: &recorder) }
        #expect(result == .stopped(consumed: 8))
        #expect(recorder.events == [.control(.close, [0x03, 0xE8])])
    }

    @Test("a header's length is known before it is written, for every size class, masked or not")
    func headerLength() {
        var buffer = [UInt8](repeating: 0, count: FrameHeader.maxSize)
        for payloadLength in [0, 1, 125, 126, 127, 65_535, 65_536, 1 << 40] {
            for key: UInt32? in [nil, 0xA1B2_C3D4] {
                let written = buffer.withUnsafeMutableBytes {
                    FrameHeader.write(opcode: .binary, payloadLength: payloadLength, maskKey: key, into: $0.baseAddress!)
                }
                #expect(FrameHeader.length(payloadLength: payloadLength, masked: key != nil) == written,
                        "payload \(payloadLength), masked \(key != nil)")
            }
        }
    }
}

