import CUV

/// A one-shot or repeating timer on a loop (`uv_timer_t`). Loop-confined.
///
/// Lifetime: the handle is allocated and started by ``Loop/scheduleTimer(after:repeating:_:)``, which retains
/// the timer through `handle.data`. ``cancel()`` (or the firing of a one-shot timer) calls `uv_close`; the
/// close callback frees the handle and releases the timer. Keeping a reference is only needed to cancel.
///
/// Timers are for per-loop work (stats lines, sweeps over many connections), not one per connection.
public final class LoopTimer: LoopHandleOwner {
    public let loop: Loop
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private var body: (() -> Void)?
    private let repeats: Bool
    /// True once the timer was cancelled or a one-shot timer fired.
    public private(set) var isDone = false

    fileprivate init(loop: Loop, delayMilliseconds: UInt64, repeatMilliseconds: UInt64, body: @escaping () -> Void) {
        self.loop = loop
        self.handle = .allocate(capacity: 1)
        self.body = body
        self.repeats = repeatMilliseconds > 0
        uv_timer_init(loop.uvLoop, self.handle)
        self.handle.pointee.data = Unmanaged.passRetained(self as AnyObject).toOpaque()
        if loop.isShuttingDown {
            self.cancel()
            return
        }
        uv_timer_start(self.handle, { handle in
            let timer = Unmanaged<LoopTimer>.fromOpaque(handle!.pointee.data!).takeUnretainedValue()
            timer.fire()
        }, delayMilliseconds, repeatMilliseconds)
    }

    private func fire() {
        guard let body = self.body else { return }
        if !self.repeats { self.cancel() }  // Clears `body`, which is why it was read first.
        body()
    }

    /// Stops the timer; it will not fire again. Calling it twice is harmless.
    public func cancel() {
        guard !self.isDone else { return }
        self.isDone = true
        self.body = nil  // Breaks a cycle if the body captured the timer.
        closeOwnedHandle(cuv_timer_as_handle(self.handle))
    }

    func closeForShutdown() { self.cancel() }
}

@available(*, unavailable)
extension LoopTimer: Sendable {}

extension Loop {
    /// Runs `body` on this loop after `delay`, and then every `interval` if one is given. Loop-confined.
    ///
    /// Resolution is libuv's: milliseconds, against the loop's cached clock.
    @discardableResult
    public func scheduleTimer(
        after delay: Duration,
        repeating interval: Duration? = nil,
        _ body: @escaping () -> Void
    ) -> LoopTimer {
        self.assertInLoop()
        return LoopTimer(
            loop: self,
            delayMilliseconds: delay.milliseconds,
            repeatMilliseconds: interval.map { max($0.milliseconds, 1) } ?? 0,
            body: body
        )
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, never negative.
    var milliseconds: UInt64 {
        let (seconds, attoseconds) = self.components
        if seconds < 0 { return 0 }
        let millis = UInt64(seconds) * 1000 + UInt64((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
        return millis
    }
}
