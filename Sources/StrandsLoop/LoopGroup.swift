import CUV
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// N event loops, each run by its own thread, each thread pinned to its own CPU.
///
/// A connection lives on one loop for its whole life; ``next()`` spreads new work over the loops round robin.
/// ``shutdown()`` closes every handle on every loop and joins the threads.
public final class LoopGroup: Sendable {
    /// The loops, in CPU order.
    public let loops: [Loop]
    private let threads: Locked<[pthread_t]>
    private let cursor = Atomic<Int>(0)

    /// Starts `loopCount` loops.
    /// - Parameters:
    ///   - loopCount: How many loops and threads; defaults to the CPUs this process may use
    ///     (`taskset` narrows it), because one busy loop saturates one core.
    ///   - pinning: Where the loop threads run; by default loop *i* is pinned to the *i*-th CPU of the
    ///     process's affinity mask (wrapping around), so a loop keeps its caches warm and two loops of the
    ///     group never fight for one core.
    public init(loopCount: Int = System.availableCPUs, pinning: Pinning = .automatic) throws(UVError) {
        precondition(loopCount > 0, "a LoopGroup needs at least one loop")
        var loops: [Loop] = []
        for index in 0..<loopCount {
            loops.append(try Loop(index: index))
        }
        self.loops = loops
        let cpus = System.availableCPUs
        var threads: [pthread_t] = []
        var latches: [BlockingQueue<Bool>] = []
        for loop in loops {
            let cpu: Int
            switch pinning.kind {
            case .automatic: cpu = Int(cuv_nth_available_cpu(Int32(loop.index % cpus)))
            case .none: cpu = -1
            case .cpus(let list): cpu = list.isEmpty ? -1 : list[loop.index % list.count]
            }
            let started = LoopThreadStart(loop: loop, cpu: cpu)
            latches.append(started.running)
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { argument in
                let start = Unmanaged<LoopThreadStart>.fromOpaque(argument!).takeRetainedValue()
                if start.cpu >= 0 { _ = cuv_pin_current_thread(Int32(start.cpu)) }
                start.loop.run(onStart: { start.running.post(true) })
                return nil
            }, Unmanaged.passRetained(started).toOpaque())
            precondition(rc == 0, "pthread_create failed: \(rc)")
            threads.append(thread)
        }
        self.threads = Locked(threads)
        // Callers may use the loops as soon as init returns: wait until each knows its thread.
        for latch in latches { _ = latch.wait() }
    }

    /// The next loop, round robin. Safe from any thread.
    public func next() -> Loop {
        let n = self.cursor.wrappingAdd(1, ordering: .relaxed).oldValue
        return self.loops[Int(UInt(bitPattern: n) % UInt(self.loops.count))]
    }

    /// Shuts every loop down (see ``Loop/shutdown()``) and waits for its thread to finish.
    /// Safe from any thread except a loop thread of this group; later calls return at once.
    public func shutdown() {
        precondition(!self.loops.contains { $0.inEventLoop }, "LoopGroup.shutdown() would join its own thread")
        self.shutdownAndJoin()
    }

    func shutdownAndJoin() {
        for loop in self.loops { loop.shutdown() }
        let threads = self.threads.withLock { threads in
            defer { threads = [] }
            return threads
        }
        let me = pthread_self()
        for thread in threads {
            // A group released on one of its own loop threads cannot join that thread; it ends on its own.
            if pthread_equal(thread, me) != 0 { pthread_detach(thread) } else { pthread_join(thread, nil) }
        }
    }

    deinit {
        self.shutdownAndJoin()
    }
}

extension LoopGroup {
    /// Which CPUs a group's loop threads are pinned to.
    public struct Pinning: Sendable {
        enum Kind { case automatic, none, cpus([Int]) }
        let kind: Kind

        /// Loop *i* on the *i*-th CPU the process may use, wrapping around.
        public static let automatic = Pinning(kind: .automatic)
        /// No pinning: the scheduler places the threads.
        public static let none = Pinning(kind: .none)
        /// Loop *i* on `cpus[i % cpus.count]` (CPU numbers as `taskset` and `/proc/cpuinfo` give them).
        public static func cpus(_ cpus: [Int]) -> Pinning { Pinning(kind: .cpus(cpus)) }
    }
}

private final class LoopThreadStart {
    let loop: Loop
    let cpu: Int
    let running = BlockingQueue<Bool>()
    init(loop: Loop, cpu: Int) {
        self.loop = loop
        self.cpu = cpu
    }
}

/// Facts about the machine and process that sizing decisions need.
public enum System {
    /// CPUs this process may run on (its affinity mask, which `taskset` narrows).
    public static var availableCPUs: Int { Int(cuv_available_cpus()) }

    /// The numbers of the CPUs the calling thread may run on.
    public static var allowedCPUs: [Int] {
        (0..<System.availableCPUs).map { Int(cuv_nth_available_cpu(Int32($0))) }.filter { $0 >= 0 }
    }

    /// Restricts the calling thread, and the threads and processes it starts afterwards, to `cpus`
    /// (as `taskset` would). Loop groups created afterwards pin within that set.
    public static func restrictCurrentThread(toCPUs cpus: [Int]) throws(UVError) {
        let rc = cpus.map { Int32($0) }.withUnsafeBufferPointer { cuv_set_affinity($0.baseAddress, Int32($0.count)) }
        if rc < 0 { throw UVError(code: rc, context: "sched_setaffinity(\(cpus))") }
    }

    /// Fills `buffer` from the kernel's cryptographically secure generator (`getrandom`). Traps only if the
    /// kernel cannot provide randomness at all, which no supported Linux does.
    public static func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        let rc = cuv_random_bytes(base, buffer.count)
        precondition(rc == 0, "getrandom failed: \(UVError(code: rc))")
    }

    /// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit; every connection is a descriptor.
    /// - Returns: The limit now in force.
    @discardableResult
    public static func raiseOpenFileLimit() throws(UVError) -> Int {
        let rc = cuv_raise_open_file_limit()
        if rc < 0 { throw UVError(code: Int32(rc), context: "setrlimit(RLIMIT_NOFILE)") }
        return rc
    }

    /// Has this process get SIGTERM when `parent`, the process that started it, ends: a helper process
    /// then cannot outlive the tool that spawned it, even one killed outright. A thread waits on the
    /// parent's pidfd (Linux 5.3 and later); older kernels get `PR_SET_PDEATHSIG`, which fires when the
    /// parent's spawning *thread* ends, so there the parent should spawn from a thread that lives as
    /// long as it does.
    /// - Returns: `false` when `parent` is not (or no longer) this process's parent.
    public static func terminateWhenParentEnds(_ parent: Int32) throws(UVError) -> Bool {
        let rc = cuv_terminate_with_parent(parent)
        if rc == -ESRCH { return false }
        if rc < 0 { throw UVError(code: Int32(rc), context: "watch parent \(parent)") }
        return true
    }

    /// Asks malloc to return the free pages it holds to the system (glibc's `malloc_trim`), so that
    /// memory freed in many blocks below its mmap threshold lowers the process's size. Costs a walk of
    /// the heap: for occasional use after large releases, never per message.
    public static func releaseFreeMemory() {
        _ = cuv_release_free_memory()
    }
}
