import Testing
@testable import StrandsWS

/// The connection lifecycle without sockets: every event in every phase, odd ones included.
@Suite("ConnectionState")
struct ConnectionStateTests {
    typealias Phase = ConnectionState.Phase

    /// A state brought to `phase` the way a connection gets there.
    static func state(_ phase: Phase, client: Bool = false) -> ConnectionState {
        var state = ConnectionState(isClient: client)
        switch phase {
        case .handshake: break
        case .httpResponse: _ = state.respondedWithHTTP()
        case .open: _ = state.handshakeSucceeded()
        case .closeSent:
            _ = state.handshakeSucceeded()
            _ = state.closeRequested(.normalClosure, reason: "")
        case .closing:
            _ = state.handshakeSucceeded()
            _ = state.receivedClose(.normalClosure)
        case .closed:
            _ = state.handshakeSucceeded()
            _ = state.transportClosed()
        }
        #expect(state.phase == phase)
        return state
    }

    @Test("a handshake opens; with a shutdown pending a server answers 503 and a client opens to close")
    func handshake() {
        var server = ConnectionState(isClient: false)
        #expect(server.handshakeSucceeded() == .open(thenClose: false))
        #expect(server.phase == .open && server.didOpen)
        #expect(server.handshakeSucceeded() == .none)  // Only once.

        var pendingServer = ConnectionState(isClient: false)
        #expect(pendingServer.shutdownRequested(.goingAway, reason: "") == .none)
        #expect(pendingServer.handshakeSucceeded() == .refuse(status: 503))
        #expect(pendingServer.phase == .httpResponse && !pendingServer.didOpen)

        var pendingClient = ConnectionState(isClient: true)
        _ = pendingClient.shutdownRequested(.goingAway, reason: "")
        #expect(pendingClient.handshakeSucceeded() == .open(thenClose: true))
    }

    @Test("closing: open sends a close and waits; during the handshake TCP just closes; closing twice does nothing")
    func closeRequested() {
        var open = Self.state(.open)
        #expect(open.closeRequested(.normalClosure, reason: "bye") == .sendClose(.normalClosure, reason: "bye"))
        #expect(open.phase == .closeSent)
        #expect(open.closeRequested(.goingAway, reason: "again") == .none)  // Close while closing.
        #expect(open.phase == .closeSent)

        var handshake = Self.state(.handshake)
        #expect(handshake.closeRequested(.normalClosure, reason: "") == .closeTCP)
        for phase in [Phase.closing, .closed] {
            var state = Self.state(phase)
            #expect(state.closeRequested(.normalClosure, reason: "") == .none)
            #expect(state.phase == phase)
        }
    }

    @Test("the peer's close: echoed when open (server ends TCP, client waits for it); answered when we closed first")
    func peerCloses() {
        var server = Self.state(.open)
        #expect(server.receivedClose(CloseCode(4000)) == .sendCloseAndEnd(CloseCode(4000), reason: ""))
        #expect(server.phase == .closing && server.closeReceived)

        var client = Self.state(.open, client: true)
        #expect(client.receivedClose(.normalClosure) == .sendCloseAndAwaitEnd(.normalClosure))

        var empty = Self.state(.open)
        #expect(empty.receivedClose(.noStatusReceived) == .sendCloseAndEnd(nil, reason: ""))  // 1005 is never sent.

        var serverFirst = Self.state(.closeSent)
        #expect(serverFirst.receivedClose(.normalClosure) == .end)
        var clientFirst = Self.state(.closeSent, client: true)
        #expect(clientFirst.receivedClose(.normalClosure) == .awaitEnd)

        var twice = Self.state(.closing)
        #expect(twice.receivedClose(.normalClosure) == .none)  // A second close frame: nothing more to say.
    }

    @Test("a protocol violation fails the connection once; after our close only TCP ends")
    func violations() {
        var open = Self.state(.open)
        #expect(open.protocolViolation(.protocolError, reason: "x") == .sendCloseAndEnd(.protocolError, reason: "x"))
        #expect(open.phase == .closing)
        #expect(open.protocolViolation(.protocolError, reason: "y") == .none)

        var closeSent = Self.state(.closeSent)
        #expect(closeSent.protocolViolation(.invalidPayload, reason: "") == .end)  // One close frame only.
    }

    @Test("data after close: delivered only while open, read (not delivered) while our close waits, dropped after")
    func dataAfterClose() {
        #expect(Self.state(.open).deliversMessages && Self.state(.open).keepsReading)
        #expect(!Self.state(.closeSent).deliversMessages && Self.state(.closeSent).keepsReading)
        for phase in [Phase.handshake, .httpResponse, .closing, .closed] {
            #expect(!Self.state(phase).deliversMessages && !Self.state(phase).keepsReading)
        }
    }

    @Test("timeouts: a handshake timeout fails a client and drops a server's; during the close handshake TCP closes")
    func timeouts() {
        var client = Self.state(.handshake, client: true)
        #expect(client.deadlinePassed() == .failHandshake(timedOut: true))
        var server = Self.state(.handshake)
        #expect(server.deadlinePassed() == .closeTCP)
        for phase in [Phase.httpResponse, .closeSent, .closing] {
            var state = Self.state(phase)
            #expect(state.deadlinePassed() == .closeTCP)  // Timeout during close.
            #expect(state.phase == .closing)
        }
        var open = Self.state(.open)
        #expect(open.deadlinePassed() == .none)  // A stale deadline.
    }

    @Test("the peer's FIN: a client in the handshake fails, anything else closes TCP")
    func peerEnded() {
        var client = Self.state(.handshake, client: true)
        #expect(client.peerEnded() == .failHandshake(timedOut: false))
        for phase in [Phase.open, .closeSent, .closing, .httpResponse] {
            var state = Self.state(phase)
            #expect(state.peerEnded() == .closeTCP)
        }
    }

    @Test("TCP closing reports the close once, and only for connections that opened")
    func transportClosed() {
        var open = Self.state(.open)
        #expect(open.transportClosed() == .reportClose)
        #expect(open.transportClosed() == .none)
        var handshake = Self.state(.handshake)
        #expect(handshake.transportClosed() == .none)
        var refused = Self.state(.httpResponse)
        #expect(refused.transportClosed() == .none)
    }

    @Test("a graceful shutdown closes open connections with its code and marks those in the handshake")
    func shutdown() {
        var open = Self.state(.open)
        #expect(open.shutdownRequested(.goingAway, reason: "bye") == .sendClose(.goingAway, reason: "bye"))
        var handshake = Self.state(.handshake)
        #expect(handshake.shutdownRequested(.goingAway, reason: "") == .none)
        #expect(handshake.flags.contains(.shutdownPending))
        var closing = Self.state(.closeSent)
        #expect(closing.shutdownRequested(.goingAway, reason: "") == .none)
    }

    @Test("frames are admitted only in sequence", arguments: [
        // (opcode, fin, payload, fragmenting before, allowed, fragmenting after)
        (Opcode.text, true, 10, false, true, false),
        (Opcode.binary, false, 10, false, true, true),
        (Opcode.continuation, true, 10, false, false, false),  // No message to continue.
        (Opcode.continuation, false, 10, true, true, true),
        (Opcode.continuation, true, 10, true, true, false),
        (Opcode.text, true, 10, true, false, true),  // A new message inside a fragmented one.
        (Opcode.ping, true, 125, true, true, true),  // Control frames may interleave.
        (Opcode.ping, true, 126, false, false, false),
        (Opcode.pong, false, 1, false, false, false),
        (Opcode.close, true, 2, false, false, false),  // close(code:) only.
        (Opcode(rawValue: 3), true, 1, false, false, false),
        (Opcode(rawValue: 0xB), true, 1, false, false, false),
    ] as [(Opcode, Bool, Int, Bool, Bool, Bool)])
    func admission(opcode: Opcode, fin: Bool, count: Int, before: Bool, allowed: Bool, after: Bool) {
        var state = Self.state(.open)
        if before { #expect(state.admit(.text, fin: false, payloadCount: 1) == nil) }
        let refusal = state.admit(opcode, fin: fin, payloadCount: count)
        #expect((refusal == nil) == allowed)
        if !allowed { #expect(refusal == .invalid) }
        #expect(state.flags.contains(.sendingFragments) == after)
        #expect(state.sendsPlainMessages == !after)
    }

    @Test("nothing is sent on a connection that is not open")
    func notOpen() {
        for phase in [Phase.handshake, .httpResponse, .closeSent, .closing, .closed] {
            var state = Self.state(phase)
            #expect(state.admit(.text, fin: true, payloadCount: 1) == .notOpen)
            #expect(!state.sendsPlainMessages)
        }
    }

    @Test("keepalive: a ping once after the ping interval, a close at the idle timeout, nothing when not open")
    func keepalive() {
        var state = Self.state(.open)
        #expect(state.silent(for: 1, pingAfter: 3, closeAfter: 6) == .none)
        #expect(state.silent(for: 3, pingAfter: 3, closeAfter: 6) == .ping)
        #expect(state.silent(for: 4, pingAfter: 3, closeAfter: 6) == .none)  // One ping per silence.
        state.heardFromPeer()
        #expect(state.silent(for: 3, pingAfter: 3, closeAfter: 6) == .ping)  // A new silence, a new ping.
        #expect(state.silent(for: 6, pingAfter: 3, closeAfter: 6) == .sendClose(.goingAway, reason: "idle timeout"))
        #expect(state.silent(for: 7, pingAfter: 3, closeAfter: 6) == .none)  // Closing already.

        var noPing = Self.state(.open)
        #expect(noPing.silent(for: 100, pingAfter: 0, closeAfter: 0) == .none)  // Both off.
        #expect(noPing.silent(for: 2, pingAfter: 0, closeAfter: 2) == .sendClose(.goingAway, reason: "idle timeout"))

        var handshake = Self.state(.handshake)
        #expect(handshake.silent(for: 100, pingAfter: 1, closeAfter: 2) == .none)  // The handshake timeout rules there.
    }

    @Test("keepalive ticks fit one byte and come out in whole ticks")
    func keepaliveTicks() {
        let defaults = ConnectionRegistry.keepalive(ping: 30_000, idle: 75_000)
        #expect(defaults.tick == .milliseconds(3750))
        #expect(defaults.pingTicks == 8 && defaults.idleTicks == 20)
        #expect(ConnectionRegistry.keepalive(ping: 0, idle: 0).tick == .zero)
        let long = ConnectionRegistry.keepalive(ping: 0, idle: 3_600_000)
        #expect(long.idleTicks <= 250 && long.pingTicks == 0)
        let short = ConnectionRegistry.keepalive(ping: 40, idle: 0)
        #expect(short.tick == .milliseconds(10) && short.pingTicks == 4)
    }
}
