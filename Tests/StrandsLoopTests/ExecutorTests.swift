import StrandsLoop
import Synchronization
import Testing

/// An actor that lives on a loop.
actor OnLoop {
    let loop: Loop
    nonisolated var unownedExecutor: UnownedSerialExecutor { self.loop.asUnownedSerialExecutor() }
    private(set) var log: [Int] = []
    init(loop: Loop) { self.loop = loop }
    /// Appends `value`; whether it ran on the loop's thread.
    func add(_ value: Int) -> Bool {
        self.log.append(value)
        return self.loop.inEventLoop
    }
}

@Suite("Loop as an executor", .timeLimit(.minutes(1)))
struct ExecutorTests {
    @Test("an actor whose executor is a loop runs on the loop's thread, its calls in order")
    func actorOnLoop() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let actor = OnLoop(loop: group.loops[0])
        for value in 0..<200 { #expect(await actor.add(value)) }
        #expect(await actor.log == Array(0..<200))
        // Calls from many tasks at once are serialized: none is lost.
        await withTaskGroup(of: Void.self) { tasks in
            for value in 200..<1200 { tasks.addTask { _ = await actor.add(value) } }
        }
        #expect(await actor.log.sorted() == Array(0..<1200))
    }

    @Test("a task preferring the loop starts there and resumes there after each await, through the local queue")
    func taskPreference() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let before = loop.runAndWait { loop.localJobsRun } ?? 0
        let stayed = await Task(executorPreference: loop.taskExecutor) {
            var onLoop = loop.inEventLoop
            for _ in 0..<1000 {
                await Task.yield()
                onLoop = onLoop && loop.inEventLoop
            }
            return onLoop
        }.value
        #expect(stayed)
        // Each yield re-enqueued the task from the loop's own thread: the lock-free path, not the inbox.
        let after = loop.runAndWait { loop.localJobsRun } ?? 0
        #expect(after - before >= 1000)
    }

    @Test("the loop sleeps while no job waits and wakes for one from another thread")
    func wakesForJobs() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let actor = OnLoop(loop: group.loops[0])
        for value in 0..<5 {
            // Give the loop time to go back to sleep in its poll between calls: the call must wake it.
            try await Task.sleep(for: .milliseconds(20))
            #expect(await actor.add(value))
        }
    }

    @Test("jobs still waiting when the loop shuts down run before it ends")
    func jobsAtShutdown() throws {
        let group = try LoopGroup(loopCount: 1)
        let loop = group.loops[0]
        final class Count: Sendable { let value = Atomic<Int>(0) }
        let ran = Count()
        loop.execute {
            // Each task's first job is enqueued here, on the loop's thread, into the local queue; the
            // shutdown that follows in the same turn must not drop them.
            for _ in 0..<100 {
                Task(executorPreference: loop.taskExecutor) { ran.value.add(1, ordering: .relaxed) }
            }
            loop.shutdown()
        }
        group.shutdown()
        #expect(ran.value.load(ordering: .relaxed) == 100)
    }
}
