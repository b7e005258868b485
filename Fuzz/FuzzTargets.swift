// libFuzzer targets for the parsers that read untrusted bytes, compiled by scripts/fuzz.sh together with
// the sources of StrandsLoop, StrandsWS and StrandsTLS (one module, no package build). STRANDS_FUZZ_TARGET picks one:
//
//   frames-server   FrameParser as a server (masked frames), with UTF-8 validation
//   frames-client   FrameParser as a client (unmasked frames), RSV1 owned by an extension
//   http-request    HTTPHeadReader + HTTPRequest.parse + Handshake.validate + extension offers
//   http-response   HTTPHeadReader + ClientHandshake.check (the client's view of a 101)
//   inflate         DeflateStream: untrusted compressed messages (a limit, history or not), and a
//                   round trip of the same bytes through the compressor, which must give them back
//   deflate-offers  permessage-deflate negotiation: a Sec-WebSocket-Extensions value answered by both
//                   server modes, the answer accepted by both client modes, the agreements consistent
//   resp            RESPReader: replies whole and cut short (a cut reply is never whole, never an error)
//   bridge-frame    the Redis bridge's check of another node's frame, against the frame parser: what
//                   the check lets through must parse as exactly that one text or binary message
//   tls-stream      StrandsTLS around OpenSSL, through a loopback TLS echo server (TLSFuzzTarget.swift)
//
// The frame targets are differential: the input is parsed whole and again split into pieces at
// offsets the input itself chooses; the two runs must report the same messages and the same result.
// Any difference, crash, leak (LeakSanitizer) or hang is a finding.

#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) let target: String = {
    guard let name = getenv("STRANDS_FUZZ_TARGET") else { return "frames-server" }
    return String(cString: name)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    switch target {
    case "frames-server": fuzzFrames(input, expectMasked: true, allowedRSV: 0)
    case "frames-client": fuzzFrames(input, expectMasked: false, allowedRSV: 0x40)
    case "http-request": fuzzRequest(input)
    case "http-response": fuzzResponse(input)
    case "inflate": fuzzInflate(input)
    case "deflate-offers": fuzzDeflateOffers(input)
    case "resp": fuzzRESP(input)
    case "bridge-frame": fuzzBridgeFrame(input)
    case "tls-stream": fuzzTLSStream(input)
    default: fatalError("unknown STRANDS_FUZZ_TARGET '\(target)'")
    }
    return 0
}

/// What a parse reported, to compare two runs.
struct Record: FrameParserSink {
    var events: [[UInt8]] = []
    mutating func parser(didReceiveMessage opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
        self.events.append([opcode.rawValue] + Array(payload))
        return true
    }
    mutating func parser(didReceiveMessage opcode: Opcode, rsv: UInt8, payload: UnsafeMutableRawBufferPointer) -> Bool {
        self.events.append([opcode.rawValue | rsv] + Array(payload))
        return true
    }
    mutating func parser(didReceiveControl opcode: Opcode, payload: UnsafeMutableRawBufferPointer) -> Bool {
        self.events.append([opcode.rawValue] + Array(payload))
        return opcode != .close
    }
}

func fuzzFrames(_ input: UnsafeBufferPointer<UInt8>, expectMasked: Bool, allowedRSV: UInt8) {
    guard input.count >= 2 else { return }
    // The first two bytes choose the split; the rest is the stream. A small limit reaches 1009 too.
    let stride = Int(input[0]) % 17 + 1
    let limit = input[1] & 1 == 0 ? 1 << 20 : 300
    let stream = Array(input.dropFirst(2))

    func run(_ pieces: [ArraySlice<UInt8>]) -> (Record, FrameParseResult) {
        var parser = FrameParser(expectMasked: expectMasked, maxMessageSize: limit, allowedRSV: allowedRSV)
        var record = Record()
        var result = FrameParseResult.consumedAll
        for piece in pieces {
            var bytes = Array(piece)
            result = bytes.withUnsafeMutableBytes { parser.parse($0, into: &record) }
            if case .consumedAll = result { continue }
            break
        }
        parser.release()
        return (record, result)
    }

    let (whole, wholeResult) = run([stream[...]])
    var pieces: [ArraySlice<UInt8>] = []
    var start = 0
    var step = stride
    while start < stream.count {
        let end = min(start + step, stream.count)
        pieces.append(stream[start..<end])
        start = end
        step = step % 13 + 1  // Pieces of varying sizes, so headers split at every place.
    }
    let (split, splitResult) = run(pieces)
    switch (wholeResult, splitResult) {
    case (.failed(let a, _), .failed(let b, _)):
        precondition(a == b, "whole and split parses failed differently: \(a) / \(b)")
    case (.stopped, .stopped), (.consumedAll, .consumedAll):
        break
    default:
        preconditionFailure("whole parse \(wholeResult), split parse \(splitResult)")
    }
    // The split run may stop or fail on a later piece than the whole one saw, but everything reported
    // before that must match.
    precondition(whole.events == split.events, "whole and split parses reported different frames")
}

func fuzzRequest(_ input: UnsafeBufferPointer<UInt8>) {
    guard let head = readHead(input) else { return }
    guard let (startLine, headers) = try? head.reader.split(length: head.length),
          let request = try? HTTPRequest.parse(startLine: startLine, headers: headers)
    else { return }
    _ = Handshake.isUpgrade(request)
    if Handshake.validate(request) == nil {
        _ = Handshake.response(key: request.headers.first("Sec-WebSocket-Key")!.trimmingHTTPWhitespace(),
                               subprotocol: request.headers.tokens("Sec-WebSocket-Protocol").first, headers: [:])
    }
    if let offers = ExtensionOffer.parse(request.headers["Sec-WebSocket-Extensions"]) {
        // What is printed parses back to the same offers.
        let again = ExtensionOffer.parse([offers.map(\.description).joined(separator: ", ")])
        precondition(again == offers, "extension offers do not round-trip: \(offers)")
    }
    _ = request.path
    _ = request.query
}

func fuzzResponse(_ input: UnsafeBufferPointer<UInt8>) {
    guard let head = readHead(input) else { return }
    guard let (startLine, headers) = try? head.reader.split(length: head.length) else { return }
    _ = ClientHandshake.check(startLine: startLine, headers: headers, expectedAccept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                              offeredProtocols: ["chat"], offeredExtensions: ["permessage-deflate"])
}

/// Feeds a head reader in pieces of the sizes the first byte picks, as a peer's reads would arrive.
func readHead(_ input: UnsafeBufferPointer<UInt8>) -> (reader: HTTPHeadReader, length: Int)? {
    guard input.count >= 1 else { return nil }
    var limits = HTTPLimits()
    limits.maxHeadBytes = 4096
    limits.maxRequestLineLength = 1024
    limits.maxHeaderCount = 40
    let reader = HTTPHeadReader(limits: limits)
    let step = Int(input[0]) % 64 + 1
    var offset = 1
    while offset < input.count {
        let end = min(offset + step, input.count)
        let piece = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[offset..<end])
        let result: Int?
        do { result = try reader.append(piece) } catch { return nil }
        if let length = result { return (reader, length) }
        offset = end
    }
    return nil
}

/// Streams kept across inputs, as a connection's are across messages; made once per process.
nonisolated(unsafe) var fuzzInflaters: [DeflateStream] = []
nonisolated(unsafe) var fuzzCompressors: [DeflateStream] = []
nonisolated(unsafe) var fuzzOutput = RawBuffer()
nonisolated(unsafe) var fuzzCompressed = RawBuffer()

/// The first byte picks the settings: bit 0 history (context takeover) or not, bit 1 a 300-byte limit
/// or 1 MiB, bits 2-4 the window (8 to 15). The rest is the message, inflated as a peer's would be; then
/// compressed and inflated again by a matching pair, which must give it back exactly.
func fuzzInflate(_ input: UnsafeBufferPointer<UInt8>) {
    guard input.count >= 1 else { return }
    let takeover = input[0] & 1 != 0
    let limit = input[0] & 2 != 0 ? 300 : 1 << 20
    let bits = Int(input[0] >> 2 & 7) + 8
    if fuzzInflaters.isEmpty {
        for window in 8...15 {
            fuzzInflaters.append(DeflateStream(inflateWindowBits: window)!)
            fuzzCompressors.append(DeflateStream(level: 6, windowBits: max(9, window), memoryLevel: 5)!)
        }
    }
    let message = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[1...])
    // Untrusted input into a stream that may hold history from earlier inputs.
    let inflater = fuzzInflaters[bits - 8]
    if !takeover { inflater.reset() }
    let result = inflater.decompress(message, limit: limit, keepsHistory: takeover, into: &fuzzOutput)
    precondition(fuzzOutput.count <= limit, "inflated \(fuzzOutput.count) bytes past the \(limit)-byte limit")
    if result != .complete { inflater.reset() }  // A connection would be closed: start clean.

    // The round trip, on a fresh pair for this window: what is compressed comes back.
    let compressor = fuzzCompressors[bits - 8]
    compressor.reset()
    let reader = DeflateStream(inflateWindowBits: bits)!
    for _ in 0..<2 {  // Twice: the second message may refer to the first.
        precondition(compressor.compress(message, into: &fuzzCompressed), "compress failed")
        let back = reader.decompress(fuzzCompressed.bytes, limit: 1 << 20, keepsHistory: true, into: &fuzzOutput)
        precondition(back == .complete && Array(fuzzOutput.bytes) == Array(message), "round trip changed the message")
    }
    if fuzzOutput.capacity > 1 << 20 { fuzzOutput.free() }
    if fuzzCompressed.capacity > 1 << 20 { fuzzCompressed.free() }
}

/// A Sec-WebSocket-Extensions value from a client: every answer a server mode gives must be accepted
/// by every client mode, print and parse back the same, and leave each side compressing with a window
/// the other inflates (the agreements never disagree on history).
func fuzzDeflateOffers(_ input: UnsafeBufferPointer<UInt8>) {
    let value = String(decoding: input, as: UTF8.self)
    guard let offers = ExtensionOffer.parse([value]) else { return }
    for server in [WebSocketCompression.shared, .dedicated, WebSocketCompression(mode: .dedicated, windowBits: 8)] {
        guard let (answer, agreed) = server.answer(offers) else { continue }
        precondition(ExtensionOffer.parse([answer.description]) == [answer], "answer does not round-trip: \(answer)")
        for client in [WebSocketCompression.shared, .dedicated] {
            guard case .success(let mine) = client.accept(answer) else {
                preconditionFailure("client refused the server's answer '\(answer)' to '\(value)'")
            }
            precondition(!mine.sendTakeover || agreed.receiveTakeover, "client keeps history the server drops: \(answer)")
            precondition(!agreed.sendTakeover || mine.receiveTakeover, "server keeps history the client drops: \(answer)")
            precondition(mine.sendWindowBits <= max(agreed.receiveWindowBits, 9), "client window too large: \(answer)")
            precondition(agreed.sendWindowBits <= max(mine.receiveWindowBits, 9), "server window too large: \(answer)")
        }
    }
}

/// Redis replies: read one after another; every reply ends inside the input and past its start, and
/// any shorter prefix that still holds a reply gives that same reply (what arrives in pieces reads
/// the same as what arrives at once), while a prefix that ends inside it gives "need more", not an error.
func fuzzRESP(_ input: UnsafeBufferPointer<UInt8>) {
    let bytes = UnsafeRawBufferPointer(input)
    var offset = 0
    while offset < bytes.count {
        let reply: RESPReader.Reply?
        do { reply = try RESPReader.read(bytes, at: offset) } catch { return }
        guard let reply else { return }
        precondition(reply.end > offset && reply.end <= bytes.count, "reply ends outside the input")
        let cut = offset + (reply.end - offset) / 2
        let prefix = UnsafeRawBufferPointer(rebasing: bytes[0..<cut])
        do {
            if let early = try RESPReader.read(prefix, at: offset) {
                preconditionFailure("a prefix of \(cut - offset) bytes read as a whole reply ending at \(early.end)")
            }
        } catch {
            preconditionFailure("a prefix of a valid reply is an error: \(error)")
        }
        let exact = UnsafeRawBufferPointer(rebasing: bytes[0..<reply.end])
        precondition((try? RESPReader.read(exact, at: offset)) == reply, "the reply alone reads differently")
        offset = reply.end
    }
}

func fuzzBridgeFrame(_ input: UnsafeBufferPointer<UInt8>) {
    let frame = UnsafeRawBufferPointer(input)
    guard let header = RedisBridgeCore.wholeMessageFrameHeader(frame) else { return }
    var parser = FrameParser(expectMasked: false, maxMessageSize: 1 << 30, allowedRSV: 0)
    var record = Record()
    var bytes = Array(input)
    let result = bytes.withUnsafeMutableBytes { parser.parse($0, into: &record) }
    parser.release()
    guard case .consumedAll = result else { preconditionFailure("the check passed a frame the parser ends with \(result)") }
    precondition(record.events.count == 1, "the check passed \(record.events.count) messages as one")
    precondition(record.events[0] == [input[0] & 0x0F] + Array(input[header...]), "the check and the parser disagree on the payload")
}
