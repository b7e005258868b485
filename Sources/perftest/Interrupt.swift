import Dispatch
import StrandsCLI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM end a run early instead of killing it: the run stops sending as at its deadline,
/// drains for the grace period and reports what it measured (and the suite, the rows it finished).
/// A second signal exits at once.
enum Interrupt {
    private static let signalled = Atomic<Int32>(0)
    private static let wake = DispatchSemaphore(value: 0)
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []  // Set once, before any run.

    /// The signal that asked for the stop, if one did.
    static var signal: Int32? {
        let signo = Self.signalled.load(ordering: .acquiring)
        return signo == 0 ? nil : signo
    }

    /// Installs the handlers; call once, from the main thread, before the first run.
    static func install() {
        let queue = DispatchQueue(label: "perftest.signals")
        for signo in [SIGINT, SIGTERM] {
            Glibc.signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: queue)
            source.setEventHandler {
                let (first, _) = Self.signalled.compareExchange(expected: 0, desired: signo, ordering: .acquiringAndReleasing)
                guard first else {
                    Output.error("perftest: second signal, exiting now")
                    exit(128 + signo)
                }
                Output.error("perftest: \(Self.name(of: signo)): stopping early, draining and reporting "
                    + "(again to exit at once)")
                Self.wake.signal()
            }
            source.resume()
            Self.sources.append(source)
        }
    }

    /// "SIGINT", "SIGTERM", or "signal N".
    static func name(of signo: Int32) -> String {
        signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "signal \(signo)"
    }

    /// Sleeps until `deadline` (``Clock/nanoseconds()``) or a stop request, whichever comes first.
    /// - Returns: `true` if a stop was requested.
    static func sleep(until deadline: UInt64) -> Bool {
        while Self.signal == nil {
            let now = Clock.nanoseconds()
            if now >= deadline { return false }
            _ = Self.wake.wait(timeout: .now() + .nanoseconds(Int(deadline - now)))
        }
        Self.wake.signal()  // Let the next sleeper see the request at once too.
        return true
    }
}
