import CUV
import StrandsTestSupport
import Testing
@testable import StrandsWS

/// The instance size a class's metadata records (Swift's class metadata without Objective-C interop:
/// kind, superclass, flags, address point, then the instance size as a 32-bit word at offset 24).
func instanceSize(_ type: AnyClass) -> Int {
    Int(unsafeBitCast(type, to: UnsafeRawPointer.self).load(fromByteOffset: 24, as: UInt32.self))
}

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
        // A 112-byte malloc chunk (glibc: 16-byte steps, 8 bytes of header) holds up to 104.
        #expect(instanceSize(WebSocket.self) <= 104, "WebSocket: \(instanceSize(WebSocket.self)) bytes")
        #expect(MemoryLayout<uv_tcp_t>.size == 248)
    }

    @Test("an idle open connection holds one object, its handle, and no side allocation")
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
        // malloc may hand out a slightly larger free chunk than asked for: the pins are the sizes above.
        #expect(measured[0] >= instanceSize(WebSocket.self) && measured[0] <= 120, "WebSocket object: \(measured[0]) usable bytes")
        #expect(measured[1] >= 248 && measured[1] <= 280, "uv_tcp_t: \(measured[1]) usable bytes")
        #expect(measured[2] == 0, "side state held while idle")
        #expect(measured[3] == 0, "parser state held while idle")
        #expect(measured[4] == 0)
    }
}
