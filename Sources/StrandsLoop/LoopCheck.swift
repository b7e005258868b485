import CUV

/// Runs a closure once per loop iteration, right after that iteration's I/O callbacks (`uv_check_t`).
/// Loop-confined.
///
/// For work that is cheaper done once for everything a poll delivered than once per event: sending, in
/// one pass, what a batch of reads asked for, say. It does not keep the loop alive on its own.
///
/// Lifetime as ``LoopTimer``: ``Loop/afterEachPoll(_:)`` retains it through `handle.data`; ``cancel()``
/// (or the loop's shutdown) closes the handle and releases it.
public final class LoopCheck: LoopHandleOwner {
    public let loop: Loop
    private let handle: UnsafeMutablePointer<uv_check_t>
    private var body: (() -> Void)?
    /// True once cancelled.
    public private(set) var isDone = false

    fileprivate init(loop: Loop, body: @escaping () -> Void) {
        self.loop = loop
        self.handle = .allocate(capacity: 1)
        self.body = body
        uv_check_init(loop.uvLoop, self.handle)
        self.handle.pointee.data = Unmanaged.passRetained(self as AnyObject).toOpaque()
        if loop.isShuttingDown {
            self.cancel()
            return
        }
        uv_check_start(self.handle) { handle in
            Unmanaged<LoopCheck>.fromOpaque(handle!.pointee.data!)._withUnsafeGuaranteedRef { $0.body?() }
        }
        uv_unref(cuv_check_as_handle(self.handle))
    }

    /// Stops it; the closure will not run again. Calling it twice is harmless.
    public func cancel() {
        guard !self.isDone else { return }
        self.isDone = true
        self.body = nil  // Breaks a cycle if the body captured the check.
        closeOwnedHandle(cuv_check_as_handle(self.handle))
    }

    func closeForShutdown() { self.cancel() }
}

@available(*, unavailable)
extension LoopCheck: Sendable {}

extension Loop {
    /// Runs `body` on this loop after the I/O callbacks of every iteration, until cancelled. Loop-confined.
    @discardableResult
    public func afterEachPoll(_ body: @escaping () -> Void) -> LoopCheck {
        self.assertInLoop()
        return LoopCheck(loop: self, body: body)
    }
}
