import Dispatch
import StrandsLoop
import Synchronization
import Testing

@Suite("Loop")
struct LoopTests {
    @Test("execute from many threads runs every task once, on the loop thread, in each sender's order")
    func executeFromManyThreads() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let threads = 8
        let perThread = 20_000

        final class Recorder {
            var lastSeen: [Int]
            var count = 0
            var offLoop = 0
            var outOfOrder = 0
            init(threads: Int) { self.lastSeen = Array(repeating: -1, count: threads) }
        }
        let recorder = LoopBound(Recorder(threads: threads), loop: loop)

        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for sequence in 0..<perThread {
                loop.execute {
                    let r = recorder.value
                    if !loop.inEventLoop { r.offLoop += 1 }
                    if r.lastSeen[thread] != sequence - 1 { r.outOfOrder += 1 }
                    r.lastSeen[thread] = sequence
                    r.count += 1
                }
            }
        }
        struct Counts: Sendable { var count, offLoop, outOfOrder: Int }
        let counts: Counts = await onLoop(loop) { finish in
            let r = recorder.value
            finish(Counts(count: r.count, offLoop: r.offLoop, outOfOrder: r.outOfOrder))
        }
        #expect(counts.count == threads * perThread)
        #expect(counts.offLoop == 0)
        #expect(counts.outOfOrder == 0)
        #expect(!loop.inEventLoop)
    }

    @Test("a one-shot timer fires once, no earlier than asked; a repeating one repeats until cancelled")
    func timers() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        struct Seen: Sendable { var oneShotDelay: UInt64, oneShotFires: Int, ticks: Int, repeatingSpan: UInt64 }
        let seen: Seen = await onLoop(loop) { finish in
            let start = loop.now
            var oneShotAt: UInt64?
            var oneShotFires = 0
            var ticks = 0
            var repeatingDone: UInt64?
            func check() {
                guard let oneShotAt, let repeatingDone else { return }
                // Let one more interval pass so a stray extra firing would be counted.
                loop.scheduleTimer(after: .milliseconds(30)) {
                    finish(Seen(oneShotDelay: oneShotAt - start, oneShotFires: oneShotFires, ticks: ticks,
                                repeatingSpan: repeatingDone - start))
                }
            }
            loop.scheduleTimer(after: .milliseconds(25)) {
                oneShotFires += 1
                if oneShotAt == nil {
                    oneShotAt = loop.now
                    check()
                }
            }
            var repeating: LoopTimer?
            repeating = loop.scheduleTimer(after: .milliseconds(5), repeating: .milliseconds(5)) {
                ticks += 1
                if ticks == 5 {
                    repeating?.cancel()
                    repeatingDone = loop.now
                    check()
                }
            }
        }
        #expect(seen.oneShotDelay >= 25)
        #expect(seen.oneShotFires == 1)
        #expect(seen.ticks == 5)
        #expect(seen.repeatingSpan >= 25)
    }

    @Test("a cancelled timer never fires")
    func cancelledTimer() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let fired = await onLoop(loop) { finish in
            var fired = false
            let doomed = loop.scheduleTimer(after: .milliseconds(10)) { fired = true }
            doomed.cancel()
            #expect(doomed.isDone)
            // libuv runs timers in due order: by the time this one fires the cancelled one would have.
            loop.scheduleTimer(after: .milliseconds(40)) { finish(fired) }
        }
        #expect(!fired)
    }

    @Test("a check runs after each iteration's callbacks, and never again once cancelled")
    func afterEachPoll() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let handlesBefore = await onLoop(loop) { finish in finish(loop.handleCount) }
        let log = await onLoop(loop) { finish in
            var log: [String] = []
            let check = loop.afterEachPoll { log.append("check") }
            #expect(loop.handleCount == handlesBefore + 1)
            loop.scheduleTimer(after: .milliseconds(5)) { log.append("timer 1") }
            loop.scheduleTimer(after: .milliseconds(30)) {
                log.append("timer 2")
                check.cancel()
                #expect(check.isDone)
            }
            // Iterations go on after the cancel (more timers), and the check must stay silent.
            loop.scheduleTimer(after: .milliseconds(40)) { log.append("timer 3") }
            loop.scheduleTimer(after: .milliseconds(60)) { finish(log) }
        }
        let first = try #require(log.firstIndex(of: "timer 1"))
        let second = try #require(log.firstIndex(of: "timer 2"))
        #expect(log[first + 1] == "check")  // The iteration that ran timer 1 ends with the check.
        #expect(second > first + 1)
        #expect(log[(second + 1)...] == ["timer 3"])
        // The last timer's handle closes in a later iteration (its close callback): wait a few turns for it.
        var handlesAfter = Int.max
        for _ in 0..<20 where handlesAfter != handlesBefore {
            handlesAfter = await onLoop(loop) { finish in finish(loop.handleCount) }
        }
        #expect(handlesAfter == handlesBefore)
    }

    @Test("a loop can run on a thread of the caller's choosing and stops on shutdown")
    func standaloneLoop() async throws {
        let loop = try Loop()
        #expect(!loop.hasStarted)
        let finished = Locked(false)
        let thread = Thread { loop.run(); finished.withLock { $0 = true } as Void }
        thread.start()
        let ranOnLoop = await onLoop(loop) { finish in finish(loop.inEventLoop) }
        #expect(ranOnLoop)
        loop.shutdown()
        thread.join()
        #expect(finished.current)
        #expect(loop.closeResult == 0)
        #expect(loop.execute {} == false)
    }
}

/// A minimal joinable thread for tests (no Foundation).
final class Thread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&self.handle, nil, { argument in
            let thread = Unmanaged<Thread>.fromOpaque(argument!).takeRetainedValue()
            thread.body()
            return nil
        }, box)
    }
    func join() { pthread_join(self.handle, nil) }
}

#if canImport(Glibc)
import Glibc
#endif
