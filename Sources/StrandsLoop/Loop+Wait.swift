import CUV

#if canImport(Glibc)
import Glibc
#endif

extension Loop {
    /// Runs `body` on this loop and blocks the calling thread for its result. For set-up and tests, never
    /// from a loop thread (it would wait on itself: then, or before the loop runs, `body` runs inline).
    ///
    /// Returns `nil` if the loop is shutting down and refused the task.
    public func runAndWait<R>(_ body: @escaping () -> R) -> R? {
        if self.inEventLoop || !self.hasStarted {
            return body()
        }
        let latch = BlockingQueue<R>()
        let task = UncheckedBox(body)
        let accepted = self.execute { latch.post(task.value()) }
        return accepted ? latch.wait() : nil
    }
}

/// Hands a non-Sendable value to another thread where the caller guarantees only one side touches it.
struct UncheckedBox<Value>: @unchecked Sendable {  // Safe: used once, by the receiving thread only.
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Values handed from loop threads to one waiting thread, in order (pthread mutex + condition); with one
/// value, a one-shot hand-off. The values cross threads: the caller guarantees that only the receiver
/// touches one once it is posted.
package final class BlockingQueue<Value>: @unchecked Sendable {  // Safe: `values` is guarded by `mutex`.
    // Allocated, not stored inline: pthread objects must not move, and `&property` promises no address.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var values: [Value] = []

    package init() {
        pthread_mutex_init(self.mutex, nil)
        pthread_cond_init(self.condition, nil)
    }

    deinit {
        pthread_cond_destroy(self.condition)
        pthread_mutex_destroy(self.mutex)
        self.condition.deallocate()
        self.mutex.deallocate()
    }

    package func post(_ value: Value) {
        pthread_mutex_lock(self.mutex)
        self.values.append(value)
        pthread_cond_signal(self.condition)
        pthread_mutex_unlock(self.mutex)
    }

    /// The next value, waiting for one if none is there.
    package func wait() -> Value {
        pthread_mutex_lock(self.mutex)
        while self.values.isEmpty { pthread_cond_wait(self.condition, self.mutex) }
        let value = self.values.removeFirst()
        pthread_mutex_unlock(self.mutex)
        return value
    }
}

/// Values posted from any thread, taken in order by one task that suspends (blocking no thread) while
/// none is there: what async code waits on where ``BlockingQueue`` would block.
package final class AsyncMailbox<Value: Sendable>: Sendable {
    private struct State {
        var values: [Value] = []
        var waiting: UnsafeContinuation<Value, Never>?
    }
    private let state = Locked(State())

    package init() {}

    package func post(_ value: Value) {
        let waiting = self.state.withLock { state -> UnsafeContinuation<Value, Never>? in
            if let waiting = state.waiting {
                state.waiting = nil
                return waiting
            }
            state.values.append(value)
            return nil
        }
        waiting?.resume(returning: value)
    }

    /// The next value; one task at a time.
    package func next() async -> Value {
        await withUnsafeContinuation { continuation in
            let value = self.state.withLock { state -> Value? in
                if !state.values.isEmpty { return state.values.removeFirst() }
                state.waiting = continuation
                return nil
            }
            if let value { continuation.resume(returning: value) }
        }
    }
}

extension Loop {
    /// Runs `body` on the loop and returns its result, suspending the calling task (not blocking its
    /// thread) meanwhile; nil if the loop has shut down.
    public func run<R: Sendable>(_ body: @escaping @Sendable () -> R) async -> R? {
        if self.inEventLoop { return body() }
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<R?, Never>) in
            if !self.execute({ continuation.resume(returning: body()) }) { continuation.resume(returning: nil) }
        }
    }
}

extension LoopGroup {
    /// Shuts every loop down and waits for its thread to finish, suspending the calling task instead of
    /// blocking its thread (the join happens on a thread of its own). From any task; later calls return
    /// at once.
    public func shutdownGracefully() async {
        precondition(!self.loops.contains { $0.inEventLoop }, "LoopGroup.shutdown() would join its own thread")
        let done = AsyncMailbox<Bool>()
        let joiner = ThreadStart { self.shutdownAndJoin(); done.post(true) }
        if !joiner.start() { self.shutdownAndJoin(); return }  // No thread to spare: join here.
        _ = await done.next()
    }
}

/// A detached thread running one closure.
final class ThreadStart: @unchecked Sendable {  // Safe: `body` runs once, on the new thread.
    private let body: () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    func start() -> Bool {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            let start = Unmanaged<ThreadStart>.fromOpaque(context!).takeRetainedValue()
            start.body()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<ThreadStart>.fromOpaque(context).release()
            return false
        }
        pthread_detach(thread)
        return true
    }
}
