import StrandsLoop
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` on `loop` and suspends until it calls `finish` (once; later calls are ignored).
func onLoop<T: Sendable>(
    _ loop: Loop,
    _ body: @escaping @Sendable (_ finish: @escaping @Sendable (T) -> Void) -> Void
) async -> T {
    await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
        let once = Once(continuation)
        let accepted = loop.execute { body { once.resume($0) } }
        precondition(accepted, "loop refused the task")
    }
}

final class Once<T: Sendable>: Sendable {
    private let continuation: Locked<CheckedContinuation<T, Never>?>
    init(_ continuation: CheckedContinuation<T, Never>) { self.continuation = Locked(continuation) }
    func resume(_ value: T) {
        let pending = self.continuation.withLock { slot in
            defer { slot = nil }
            return slot
        }
        pending?.resume(returning: value)
    }
}

/// Counts outcomes from many loops and calls `done` once all `total` have arrived.
final class Tally: Sendable {
    private struct State {
        var ok = 0
        var failures: [String] = []
    }
    private let state = Locked(State())
    private let total: Int
    private let done: @Sendable (_ ok: Int, _ failures: [String]) -> Void

    init(total: Int, done: @escaping @Sendable (_ ok: Int, _ failures: [String]) -> Void) {
        self.total = total
        self.done = done
    }

    func record(_ failure: String?) {
        let finished = self.state.withLock { state -> (Int, [String])? in
            if let failure { state.failures.append(failure) } else { state.ok += 1 }
            return state.ok + state.failures.count == self.total ? (state.ok, state.failures) : nil
        }
        if let finished { self.done(finished.0, finished.1) }
    }
}

/// Echoes every byte back; stateless, so one instance serves every connection of a server.
final class EchoHandler: TCPStreamDelegate, Sendable {
    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        try? stream.write(bytes)
    }
}

/// Deterministic test bytes: the byte at any offset can be recomputed for checking.
@inline(__always)
func patternByte(_ offset: Int) -> UInt8 {
    UInt8(truncatingIfNeeded: offset &* 31 &+ (offset >> 9) &+ (offset >> 17))
}

/// A port nothing listens on: bound by the kernel, then released.
func closedPort() throws -> Int {
    let group = try LoopGroup(loopCount: 1)
    defer { group.shutdown() }
    let server = try group.listen(host: "127.0.0.1", port: 0) { $0.close() }
    let port = server.port
    server.close()
    return port
}

struct SocketFailure: Error, CustomStringConvertible {
    let call: String, errno: Int32
    var description: String { "\(self.call): errno \(self.errno)" }
}

/// A plain TCP socket bound to 127.0.0.1:`port` (0: any) without SO_REUSEADDR, listening with `backlog`
/// if given. Close-on-exec, so children that other tests spawn do not inherit it. The caller closes it.
func boundLoopbackSocket(port: Int, backlog: Int32? = nil) throws(SocketFailure) -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if fd < 0 { throw SocketFailure(call: "socket", errno: errno) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let failed: String? = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            if bind(fd, pointer, length) != 0 { return "bind" }
            if let backlog, listen(fd, backlog) != 0 { return "listen" }
            return getsockname(fd, pointer, &length) != 0 ? "getsockname" : nil
        }
    }
    if let failed {
        let error = SocketFailure(call: failed, errno: errno)
        close(fd)
        throw error
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
