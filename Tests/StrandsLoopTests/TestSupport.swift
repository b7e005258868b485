import StrandsLoop
import Synchronization

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

