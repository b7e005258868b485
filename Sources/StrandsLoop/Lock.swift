#if canImport(Glibc)
import Glibc
#endif

/// A value behind a `pthread_mutex_t`.
///
/// Not `Synchronization.Mutex`: its futex fast path lives in the uninstrumented standard library, so
/// ThreadSanitizer cannot see the ordering it provides and reports races that are not there.
/// pthread mutexes are intercepted by the sanitizer, and uncontended they cost the same.
public final class Locked<Value>: @unchecked Sendable {  // Safe: `value` is only touched under `mutex`.
    // Allocated, not stored inline: a pthread mutex must not move, and `&property` promises no address.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        pthread_mutex_init(self.mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(self.mutex)
        self.mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    @inline(__always)
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(self.mutex)
        defer { pthread_mutex_unlock(self.mutex) }
        return try body(&self.value)
    }

    /// A copy of the value, read under the lock.
    public var current: Value { self.withLock { $0 } }
}
