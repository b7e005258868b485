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
    static func unixMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) &* 1_000_000 &+ UInt64(now.tv_nsec / 1000)
    }

    /// Wall-clock time minus monotonic time, in nanoseconds, taken once: a message's `ts` is then derived
    /// from the monotonic reading its latency already needs, saving a clock call per message.
    static let wallOffset: UInt64 = Clock.unixMicroseconds() &* 1000 &- Clock.nanoseconds()

    /// Wall-clock microseconds for a monotonic reading. A hot caller passes ``wallOffset`` read once
    /// into a stored property: a static is a lazy global, checked on every access.
    @inline(__always)
    static func unixMicroseconds(atMonotonic nanoseconds: UInt64, wallOffset: UInt64 = Clock.wallOffset) -> UInt64 {
        (nanoseconds &+ wallOffset) / 1000
    }

    /// CPU seconds this process has used.
    static func processCPUSeconds() -> Double { Self.seconds(of: CLOCK_PROCESS_CPUTIME_ID) ?? 0 }

    /// CPU seconds (user + system, every thread) another process on this machine has used, to the
    /// nanosecond; `nil` once it is gone or when the kernel will not tell.
    static func processCPUSeconds(pid: Int32) -> Double? {
        var clock = clockid_t()
        guard clock_getcpuclockid(pid_t(pid), &clock) == 0 else { return nil }
        return Self.seconds(of: clock)
    }

    private static func seconds(of clock: clockid_t) -> Double? {
        var now = timespec()
        guard clock_gettime(clock, &now) == 0 else { return nil }
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
