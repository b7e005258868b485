import StrandsTestSupport
import Testing
@testable import StrandsWS

/// glibc's size of a malloc'd block (in <malloc.h>, which the Glibc module does not export).
@_silgen_name("malloc_usable_size")
private func malloc_usable_size(_ pointer: UnsafeMutableRawPointer?) -> Int

/// An idle connection's memory is a feature (≤ 400 bytes with libuv's 248-byte handle): these pin the
/// sizes of what every connection holds, so they cannot creep back.
@Suite("Per-connection memory")
struct MemoryTests {
    @Test("the lifecycle and parser configuration are a few bytes; side state is a pointer")
    func inlineSizes() {
        #expect(MemoryLayout<ConnectionState>.size == 2)
        #expect(MemoryLayout<ColdState?>.size == 8)
        #expect(MemoryLayout<FrameParserState?>.size == 8)
        #expect(MemoryLayout<TCPFlags>.size == 2)
    }

    @Test("an idle open connection holds one 104-byte object, its handle, and no side allocation")
    func idleConnection() async throws {
        let serverSide = Probe()
        let harness = try Harness(handler: serverSide)
        defer { harness.shutdown() }
        let socket = try await harness.connect(handler: Probe()).get()
        _ = await serverSide.events.next()
        let sizes = Events<[Int]>()
        socket.loop.execute {
            let ws = socket.value
            let object = malloc_usable_size(Unmanaged.passUnretained(ws).toOpaque())
            let handle = malloc_usable_size(UnsafeMutableRawPointer(ws.handle))
            sizes.post([object, handle, ws.cold == nil ? 0 : 1, ws.parserState == nil ? 0 : 1,
                        ws.pendingWriteBytes])
        }
        let measured = await sizes.next()
        #expect(measured[0] <= 104, "WebSocket object: \(measured[0]) usable bytes")
        #expect(measured[1] <= 256, "uv_tcp_t: \(measured[1]) usable bytes")
        #expect(measured[2] == 0, "side state held while idle")
        #expect(measured[3] == 0, "parser state held while idle")
        #expect(measured[4] == 0)
    }
}
