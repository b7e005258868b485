import CUV
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One libuv event loop (`uv_loop_t`), run by one thread.
///
/// A `Loop` is loop-confined: everything on it, and every handle created on it, is used on the thread that
/// runs it, except ``execute(_:)``, ``shutdown()`` and ``inEventLoop``, which any thread may call.
///
/// Lifetime: the `uv_loop_t` and the `uv_async_t` behind ``execute(_:)`` are allocated in `init`. ``run()``
/// returns once ``shutdown()`` has closed every handle on the loop; it then calls `uv_loop_close` and
/// records the result in ``closeResult``. The memory is freed in `deinit`.
public final class Loop: @unchecked Sendable {  // Safe: only execute/shutdown/inEventLoop cross threads.
    /// Size of the one read buffer every stream on this loop reads into (libuv suggests 64 KiB).
    public static let readBufferSize = 64 * 1024

    package let uvLoop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let inbox = Locked(Inbox())
    /// The tasks being run; swapped with the inbox's array so neither reallocates in steady state.
    private var running: [@Sendable () -> Void] = []
    /// Every stream on this loop reads here (`uv_alloc_cb`): a read is consumed before the next one starts.
    package let readBuffer: UnsafeMutableRawBufferPointer
    private let runningThread = Atomic<UInt>(0)
    private let started = Atomic<Bool>(false)
    private var hasRun = false
    /// Set when shutdown starts: new handles are refused so that `run()` can finish.
    public private(set) var isShuttingDown = false
    /// The value `uv_loop_close` returned once `run()` finished: 0 means every handle was closed.
    public private(set) var closeResult: Int32?
    /// The position of this loop in its group (0 for a loop on its own).
    public let index: Int
    /// The filters of this loop's connections that have one (TLS), by connection. Loop-confined.
    package var filters: [ObjectIdentifier: any TCPFilter] = [:]
    /// Memory that async connections' messages were copied into, given back by connections whose task
    /// has caught up and taken again by the next one that reads: the chunk last used is in cache, where
    /// 500 connections' chunks of their own would not be. Loop-confined, a few at most.
    @exclusivity(unchecked) package var spareChunks: [AnyObject] = []
    /// Per-loop singletons of higher layers, by type; see ``local(_:make:)``.
    private var locals: [ObjectIdentifier: AnyObject] = [:]
    /// Run on every wake-up after the inbox: higher layers' lock-free hand-offs (see ``wake()``).
    private var wakeHandlers: [() -> Void] = []
    /// Bit 0: the wake-up handle is closing, ``wake()`` must not touch it. Above: twice the number of
    /// ``wake()`` calls inside `uv_async_send` now, which shutdown waits out before it closes the handle.
    private let wakeState = Atomic<Int>(0)
    /// TCP bytes read, and handed to the kernel (tried or queued), by this loop's streams. One writer:
    /// a load and a store each. Padded past a cache line on each side: other threads write `wakeState`
    /// and read `runningThread`, and counters on their line would make every read and write pay for it.
    private let paddingBefore: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    private let bytesRead = Atomic<Int>(0)
    private let bytesWritten = Atomic<Int>(0)
    private let paddingAfter: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)

    /// The loop's one cork (see ``Cork``): what the connection whose read is being handled (or inside
    /// `withCork`) writes leaves in one write when it lets go.
    package let cork: UnsafeMutablePointer<Cork>

    /// Swift concurrency jobs enqueued on the loop's own thread (see Loop+Executor.swift): run by
    /// `jobRunner`, an idle handle active only while there are some (so the poll does not block on them).
    /// Loop-confined; swapped with `runningJobs` so neither reallocates in steady state.
    @exclusivity(unchecked) var localJobs: [QueuedJob] = []
    @exclusivity(unchecked) var runningJobs: [QueuedJob] = []
    /// The loop as a task executor (see Loop+Executor.swift): `Task(executorPreference: loop.taskExecutor)`.
    /// Set in `init`, before any other thread can see the loop.
    public private(set) var taskExecutor: LoopTaskExecutor!
    let jobRunner: UnsafeMutablePointer<uv_idle_t>
    @exclusivity(unchecked) var jobRunnerActive = false
    /// Whether `runLocalJobs` is on the stack.
    @exclusivity(unchecked) var runningLocalJobs = false
    /// The connection holding the cork for the job running now (``TCPConnection/holdCorkForJob()``):
    /// its bytes leave in one write when the job ends. Retained until then.
    @exclusivity(unchecked) var jobCorkHolder: TCPConnection?
    /// Jobs run from `localJobs` so far, for tests and diagnostics.
    package internal(set) var localJobsRun = 0

    private struct Inbox {
        var tasks: [@Sendable () -> Void] = []
        var closed = false
        var shutdownRequested = false
    }

    /// Creates a loop; call ``run()`` on the thread that will own it.
    public init(index: Int = 0) throws(UVError) {
        self.index = index
        // Writes to a reset connection must fail with EPIPE, not kill the process.
        cuv_ignore_sigpipe()
        self.uvLoop = .allocate(capacity: 1)
        self.wakeup = .allocate(capacity: 1)
        self.jobRunner = .allocate(capacity: 1)
        self.readBuffer = .allocate(byteCount: Loop.readBufferSize, alignment: 16)
        self.cork = .allocate(capacity: 1)
        self.cork.initialize(to: Cork())
        let rc = uv_loop_init(self.uvLoop)
        if rc < 0 {
            self.uvLoop.deallocate()
            self.wakeup.deallocate()
            self.jobRunner.deallocate()
            self.readBuffer.deallocate()
            self.cork.deallocate()
            throw UVError(code: rc, context: "uv_loop_init")
        }
        self.uvLoop.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_async_init(self.uvLoop, self.wakeup) { handle in
            guard let handle, let data = handle.pointee.loop.pointee.data else { return }
            let loop = Unmanaged<Loop>.fromOpaque(data).takeUnretainedValue()
            loop.drainInbox()
            for handler in loop.wakeHandlers { handler() }
        }
        self.wakeup.pointee.data = nil  // Marks the handle as the loop's own during shutdown walks.
        uv_idle_init(self.uvLoop, self.jobRunner)
        self.jobRunner.pointee.data = nil
        self.taskExecutor = LoopTaskExecutor(loop: self)
    }

    deinit {
        if !self.hasRun {
            // Never run: the loop's own handles still need closing before the loop can be.
            uv_close(cuv_async_as_handle(self.wakeup), nil)
            uv_close(cuv_idle_as_handle(self.jobRunner), nil)
            uv_run(self.uvLoop, UV_RUN_NOWAIT)
            uv_loop_close(self.uvLoop)
        }
        self.uvLoop.deallocate()
        self.wakeup.deallocate()
        self.jobRunner.deallocate()
        self.readBuffer.deallocate()
        self.cork.pointee.buffer.free()
        self.cork.deallocate()
    }

    /// Whether the calling thread is the one running this loop.
    public var inEventLoop: Bool {
        let thread = self.runningThread.load(ordering: .acquiring)
        return thread != 0 && pthread_equal(pthread_t(thread), pthread_self()) != 0
    }

    /// The loop's cached clock in milliseconds (`uv_now`), updated once per loop iteration.
    public var now: UInt64 { uv_now(self.uvLoop) }

    /// The loop's clock brought up to date first (`uv_update_time`, a vDSO clock read): for deadlines,
    /// which must not start from a time the iteration has already left behind.
    package var freshNow: UInt64 {
        uv_update_time(self.uvLoop)
        return uv_now(self.uvLoop)
    }

    /// TCP bytes read by this loop's streams, and written (handed to the kernel or queued for it). Any thread.
    public var tcpByteCounts: (read: Int, written: Int) {
        (self.bytesRead.load(ordering: .relaxed), self.bytesWritten.load(ordering: .relaxed))
    }

    @inline(__always) package func countRead(_ bytes: Int) {
        self.bytesRead.store(self.bytesRead.load(ordering: .relaxed) &+ bytes, ordering: .relaxed)
    }

    @inline(__always) package func countWritten(_ bytes: Int) {
        self.bytesWritten.store(self.bytesWritten.load(ordering: .relaxed) &+ bytes, ordering: .relaxed)
    }

    /// Whether ``run()`` has been called (the loop may since have finished).
    public var hasStarted: Bool { self.started.load(ordering: .acquiring) }

    /// Runs the loop on the calling thread until ``shutdown()`` has closed every handle.
    public func run() {
        self.run(onStart: nil)
    }

    /// `onStart` runs on the loop's thread once `inEventLoop` holds, before the first iteration.
    func run(onStart: (() -> Void)?) {
        precondition(!self.hasRun, "a Loop runs once")
        self.hasRun = true
        self.runningThread.store(UInt(pthread_self()), ordering: .releasing)
        self.started.store(true, ordering: .releasing)
        onStart?()
        uv_run(self.uvLoop, UV_RUN_DEFAULT)
        self.runJobsLeftAtShutdown()
        var rc = uv_loop_close(self.uvLoop)
        // Handles created by close callbacks during shutdown are closed here, a bounded number of times.
        var rounds = 0
        while rc == UV_EBUSY.rawValue && rounds < 8 {
            self.closeAllHandles()
            uv_run(self.uvLoop, UV_RUN_DEFAULT)
            self.runJobsLeftAtShutdown()
            rc = uv_loop_close(self.uvLoop)
            rounds += 1
        }
        self.closeResult = rc
        self.locals = [:]  // Per-loop objects often hold the loop: let the cycle go with the loop.
        self.wakeHandlers = []
        self.filters = [:]
        self.runningThread.store(0, ordering: .releasing)
    }

    /// Runs `task` on the loop's thread, in the order tasks were submitted.
    ///
    /// Safe from any thread. One `uv_async_t` wakes the loop; a burst of tasks costs one wake-up.
    /// - Returns: `false` if the loop is shutting down and the task was dropped.
    @discardableResult
    public func execute(_ task: @escaping @Sendable () -> Void) -> Bool {
        let (accepted, wake) = self.inbox.withLock { inbox -> (Bool, Bool) in
            if inbox.closed { return (false, false) }
            inbox.tasks.append(task)
            return (true, inbox.tasks.count == 1)
        }
        // uv_async_send coalesces; only the first task of a burst needs to pay for the syscall.
        if wake { uv_async_send(self.wakeup) }
        return accepted
    }

    /// Closes every handle on the loop (listeners, streams, timers), after running tasks already submitted.
    /// ``run()`` then returns. Safe from any thread; later calls do nothing.
    public func shutdown() {
        let first = self.inbox.withLock { inbox -> Bool in
            if inbox.closed { return false }
            inbox.closed = true
            inbox.shutdownRequested = true
            return true
        }
        if first { uv_async_send(self.wakeup) }
    }

    /// Wakes the loop from any thread without a lock: its wake handlers (``addWakeHandler(_:)``) run in
    /// its next iteration. For hand-offs that keep their own lock-free queue and call this when it
    /// turns non-empty; like ``execute(_:)``, a burst costs one system call.
    /// - Returns: `false` once the loop is shutting down.
    @discardableResult
    package func wake() -> Bool {
        if self.wakeState.add(2, ordering: .acquiring).newValue & 1 != 0 {
            self.wakeState.subtract(2, ordering: .relaxed)
            return false
        }
        uv_async_send(self.wakeup)
        self.wakeState.subtract(2, ordering: .releasing)
        return true
    }

    /// Calls `handler` on every wake-up of this loop, after the tasks of ``execute(_:)``, until the
    /// loop ends. Loop-confined.
    package func addWakeHandler(_ handler: @escaping () -> Void) {
        self.assertInLoop()
        self.wakeHandlers.append(handler)
    }

    private func drainInbox() {
        let shutdownNow = self.inbox.withLock { inbox -> Bool in
            swap(&inbox.tasks, &self.running)
            return inbox.shutdownRequested
        }
        for task in self.running { task() }
        self.running.removeAll(keepingCapacity: true)
        if shutdownNow { self.beginShutdown() }
    }

    private func beginShutdown() {
        guard !self.isShuttingDown else { return }
        self.isShuttingDown = true
        // No `wake()` may touch the handle once it closes: refuse new ones, wait out those inside
        // uv_async_send (a few instructions each).
        self.wakeState.bitwiseOr(1, ordering: .acquiringAndReleasing)
        while self.wakeState.load(ordering: .acquiring) > 1 { sched_yield() }
        for handler in self.wakeHandlers { handler() }  // What was handed off before the door shut.
        // Tasks that raced in before `closed` was set still run: drain once more before the handle goes.
        self.inbox.withLock { inbox in swap(&inbox.tasks, &self.running) }
        for task in self.running { task() }
        self.running.removeAll()
        // Jobs of tasks waiting on this loop run too (a dropped job is a task that never resumes); the
        // shutdown's close callbacks may make more, which the runner takes until the loop ends.
        self.runLocalJobs()
        self.closeAllHandles()
    }

    /// Asks every open handle's owner to close; the wake-up handle goes last.
    private func closeAllHandles() {
        uv_walk(self.uvLoop, { handle, _ in
            guard let handle, uv_is_closing(handle) == 0 else { return }
            if let data = handle.pointee.data {
                let owner = Unmanaged<AnyObject>.fromOpaque(data).takeUnretainedValue()
                (owner as? any LoopHandleOwner)?.closeForShutdown()
            } else {
                uv_close(handle, nil)
            }
        }, nil)
    }

    /// The loop's one instance of `type`, made by `make` on first use. Loop-confined.
    ///
    /// How higher layers keep per-loop state (a reusable scratch buffer, a sweep timer) without globals.
    /// Look it up once per connection and keep the reference, not once per message.
    public func local<T: AnyObject>(_ type: T.Type, make: () -> T) -> T {
        self.assertInLoop()
        let key = ObjectIdentifier(type)
        if let existing = self.locals[key] { return unsafeDowncast(existing, to: T.self) }
        let made = make()
        self.locals[key] = made
        return made
    }

    /// Traps with a clear message when loop-confined state is touched from another thread (debug builds).
    @inline(__always)
    package func assertInLoop(_ function: StaticString = #function) {
        assert(self.inEventLoop || self.runningThread.load(ordering: .relaxed) == 0,
               "\(function) called off its loop's thread")
    }

    /// The number of handles libuv still holds on this loop (open or closing). For tests and diagnostics.
    /// 0 once the loop has closed (uv_loop_close succeeds only without handles, and the loop is gone after).
    public var handleCount: Int {
        if self.closeResult == 0 { return 0 }
        var count = 0
        withUnsafeMutablePointer(to: &count) { pointer in
            uv_walk(self.uvLoop, { _, arg in
                arg!.assumingMemoryBound(to: Int.self).pointee += 1
            }, pointer)
        }
        return count
    }
}

/// Closes a handle whose `data` holds a retained owner: the close callback releases the owner and frees
/// the handle's memory (allocated with `UnsafeMutablePointer.allocate`).
func closeOwnedHandle(_ handle: UnsafeMutablePointer<uv_handle_t>) {
    uv_close(handle) { handle in
        let handle = handle!
        Unmanaged<AnyObject>.fromOpaque(handle.pointee.data!).release()
        UnsafeMutableRawPointer(handle).deallocate()
    }
}

/// An object whose `handle.data` points at it (retained) and that knows how to close its handle.
protocol LoopHandleOwner: AnyObject {
    /// Closes the handle because the loop is shutting down.
    func closeForShutdown()
}

