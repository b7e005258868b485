import CUV

#if canImport(Glibc)
import Glibc
#endif

/// Watches process signals on one loop (`uv_signal_t`, one per signal): while it watches, those signals
/// call `handler` on the loop instead of their default action. Loop-confined.
///
/// Lifetime: like ``LoopTimer``: the handles retain the watcher until ``cancel()`` closes them.
public final class SignalWatcher: LoopHandleOwner {
    public let loop: Loop
    private var handles: [UnsafeMutablePointer<uv_signal_t>] = []
    private var handler: ((Int32) -> Void)?

    fileprivate init(loop: Loop, signals: [Int32], handler: @escaping (Int32) -> Void) throws(UVError) {
        self.loop = loop
        self.handler = handler
        // A process may start with these signals blocked (a child inherits its parent thread's mask:
        // test runners and supervisors often block them), and then libuv's handler never runs. Unblock
        // them on this loop's thread, so the kernel has one thread to deliver them to.
        var set = sigset_t()
        sigemptyset(&set)
        for signo in signals { sigaddset(&set, signo) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        for signo in signals {
            let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            var rc = loop.isShuttingDown ? UV_ECANCELED.rawValue : uv_signal_init(loop.uvLoop, handle)
            if rc < 0 {
                handle.deallocate()
                self.cancel()
                throw UVError(code: rc, context: "uv_signal_init")
            }
            handle.pointee.data = Unmanaged.passRetained(self as AnyObject).toOpaque()
            self.handles.append(handle)
            rc = uv_signal_start(handle, { handle, signo in
                let watcher = Unmanaged<SignalWatcher>.fromOpaque(handle!.pointee.data!).takeUnretainedValue()
                watcher.handler?(signo)
            }, signo)
            if rc < 0 {
                self.cancel()
                throw UVError(code: rc, context: "watch signal \(signo)")
            }
        }
    }

    /// Stops watching; the signals get their default action back. Calling it twice is harmless.
    public func cancel() {
        self.handler = nil
        let handles = self.handles
        self.handles = []
        for handle in handles { closeOwnedHandle(cuv_signal_as_handle(handle)) }
    }

    func closeForShutdown() { self.cancel() }
}

@available(*, unavailable)
extension SignalWatcher: Sendable {}

extension Loop {
    /// Calls `handler` on this loop whenever one of `signals` arrives, until the watcher is cancelled.
    /// Loop-confined.
    public func watchSignals(_ signals: [Int32], _ handler: @escaping (Int32) -> Void) throws(UVError) -> SignalWatcher {
        self.assertInLoop()
        return try SignalWatcher(loop: self, signals: signals, handler: handler)
    }
}

extension LoopGroup {
    /// The signals that ask a server to stop: SIGINT (Ctrl-C) and SIGTERM (what `kill` and service
    /// managers send).
    public static let shutdownSignals: [Int32] = [SIGINT, SIGTERM]

    /// Blocks the calling thread until one of `signals` arrives, and returns it. While it waits, those
    /// signals no longer end the process. Usable from top-level code; not from one of the group's loops.
    ///
    /// The signals are watched on the group's first loop with libuv (`uv_signal_t`), so no Dispatch
    /// source is involved: a Dispatch handler written in top-level code is inferred to be on the main
    /// actor, which Swift 6 checks at run time, and traps when it runs on Dispatch's queue.
    public func wait(untilSignal signals: [Int32] = LoopGroup.shutdownSignals) -> Int32 {
        precondition(!self.loops.contains { $0.inEventLoop }, "LoopGroup.wait(untilSignal:) would block its own loop")
        let arrived = BlockingQueue<Int32>()
        guard let watcher = self.watchSignals(signals, { arrived.post($0) }) else { return 0 }
        let signo = arrived.wait()
        // Waited for, not queued: a process that returns from main at once runs libuv's destructor,
        // which closes the pipe signal handles lock, and a uv_close after that aborts.
        _ = watcher.loop.runAndWait { watcher.value.cancel() }
        return signo
    }

    /// Starts watching `signals` on the group's first loop, from outside the group's loops; `nil` when
    /// the loop is shutting down. Cancel the watcher on its loop.
    package func watchSignals(_ signals: [Int32], _ handler: @escaping @Sendable (Int32) -> Void)
        -> LoopBound<SignalWatcher>?
    {
        let loop = self.loops[0]
        let watcher = loop.runAndWait { () -> LoopBound<SignalWatcher>? in
            (try? loop.watchSignals(signals, handler)).map { LoopBound($0, loop: loop) }
        }
        return watcher ?? nil
    }
}
