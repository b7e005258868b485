import CUV

/// A job waiting on a loop, and which of the loop's two executors it was given to: they run it
/// differently (isolated to the loop, or on it for whatever isolation the job has).
struct QueuedJob {
    let job: UnownedJob
    let forTaskExecutor: Bool
}

/// A loop is an executor for Swift concurrency, in two roles:
///
/// - **Serial executor** (the `Loop` itself): an actor whose `unownedExecutor` is a loop runs on the
///   loop's thread, between its I/O callbacks, with the loop's connections at hand.
/// - **Task executor** (``Loop/taskExecutor``): a task started with it as its executor preference runs
///   its nonisolated code on the loop, and so does a default actor it calls. A separate object because the
///   runtime gives a task executor jobs isolated elsewhere (a default actor's), which must run for that
///   isolation, not the loop's.
///
/// Both share one queue:
/// - A job enqueued on the loop's own thread (the usual case: a task resuming after an `await` that its
///   own I/O completed) goes into a plain array: no lock, no wake-up, no allocation once the array has
///   grown. The array runs at the end of each read callback (a task woken by its connection's read
///   then runs while that read's bytes and the connection's state are still in cache, and its replies
///   leave before the next connection is read, as a callback's do), and otherwise from an idle handle
///   in the loop's next iteration, active only while there are jobs, so a loop with none sleeps in its
///   poll as before.
/// - A job from another thread goes through ``execute(_:)``'s inbox and wakes the loop (one closure
///   each: the cross-thread path).
/// - Jobs run in the order they were enqueued, each to its next suspension, one at a time.
/// - At shutdown, jobs still waiting run before the loop ends (a dropped job is a task that never
///   resumes). One enqueued after the loop has ended runs on the thread that enqueues it, as nothing
///   runs on the loop any more.
extension Loop: SerialExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        self.enqueue(queued: QueuedJob(job: UnownedJob(job), forTaskExecutor: false))
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Traps unless called on the loop's thread: what `assumeIsolated` and the runtime's isolation checks
    /// ask of an executor.
    public func checkIsolated() {
        precondition(self.inEventLoop, "not on the loop's thread")
    }

    func enqueue(queued: QueuedJob) {
        if self.inEventLoop {
            self.localJobs.append(queued)
            if !self.jobRunnerActive && !self.isShuttingDown {
                self.jobRunnerActive = true
                uv_idle_start(self.jobRunner) { handle in
                    guard let data = handle?.pointee.loop.pointee.data else { return }
                    Unmanaged<Loop>.fromOpaque(data)._withUnsafeGuaranteedRef { $0.runLocalJobs() }
                }
            }
            return
        }
        if !self.execute({ self.run(queued) }) { self.run(queued) }
    }

    @inline(__always)
    private func run(_ queued: QueuedJob) {
        if queued.forTaskExecutor {
            queued.job.runSynchronously(on: self.taskExecutor.asUnownedTaskExecutor())
        } else {
            queued.job.runSynchronously(on: self.asUnownedSerialExecutor())
        }
        self.flushJobCork()
    }

    /// Writes out what the running job has corked (before it waits for the socket to drain: a wait on
    /// bytes still in the cork would never end). On the loop.
    package func flushJobCork() {
        if let holder = self.jobCorkHolder { self.releaseJobCork(holder) }
    }

    /// What the job wrote through the cork leaves now, in one write.
    private func releaseJobCork(_ holder: TCPConnection) {
        if !self.cork.pointee.buffer.isEmpty { holder.flushCork(self) }
        self.cork.pointee.owner = nil
        self.jobCorkHolder = nil
    }

    /// Runs the jobs enqueued so far on the loop's thread (those they enqueue wait for the next turn, so
    /// a task that keeps yielding cannot starve I/O); stops the runner once none are left.
    func runLocalJobs() {
        swap(&self.localJobs, &self.runningJobs)
        self.runningLocalJobs = true  // Not again from a read callback under one of these jobs.
        for queued in self.runningJobs { self.run(queued) }
        self.runningLocalJobs = false
        self.localJobsRun &+= self.runningJobs.count
        self.runningJobs.removeAll(keepingCapacity: true)
        if self.localJobs.isEmpty && self.jobRunnerActive {
            self.jobRunnerActive = false
            if !self.isShuttingDown { uv_idle_stop(self.jobRunner) }
        }
    }

    /// After the last iteration: jobs the shutdown's close callbacks made, and the jobs those made, a
    /// bounded number of rounds.
    func runJobsLeftAtShutdown() {
        var rounds = 0
        while !self.localJobs.isEmpty && rounds < 10_000 {
            self.runLocalJobs()
            rounds += 1
        }
    }
}

/// A loop as a task executor: `Task(executorPreference: loop.taskExecutor) { … }` runs the task on the
/// loop's thread (see ``Loop``'s executor roles).
public final class LoopTaskExecutor: TaskExecutor {
    public unowned let loop: Loop

    init(loop: Loop) { self.loop = loop }

    public func enqueue(_ job: consuming ExecutorJob) {
        self.loop.enqueue(queued: QueuedJob(job: UnownedJob(job), forTaskExecutor: true))
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }
}
