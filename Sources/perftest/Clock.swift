#if canImport(Glibc)
import Glibc
#endif

/// Time sources: a monotonic clock for latency (immune to wall-clock steps) and the wall clock only for
/// the `ts` field the Go tool puts in each message.
enum Clock {
    /// Monotonic nanoseconds (`CLOCK_MONOTONIC`, a vDSO call: no system call).
    @inline(__always)
    static func nanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    /// Wall-clock microseconds since 1970.
    @inline(__always)
    static func unixMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) &* 1_000_000 &+ UInt64(now.tv_nsec / 1000)
    }

    /// CPU seconds this process has used.
    static func processCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
