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
