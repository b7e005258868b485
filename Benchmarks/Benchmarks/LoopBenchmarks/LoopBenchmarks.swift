// Heap allocations per TCP round trip in steady state, counted by package-benchmark's malloc interposer
// (every thread of the process: the server loop, the client loop and the benchmark thread).
//
// One iteration = 1,000 round trips of a 64-byte message over one connection between two loops, so
// `Malloc (total)` per iteration divided by 1,000 is allocations per round trip. Target: 0.
import Benchmark
import StrandsLoop

#if canImport(Glibc)
import Glibc
#endif

/// Echo on the server loop; stateless.
final class Echo: TCPStreamDelegate, Sendable {
    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        try? stream.write(bytes)
    }
}

/// A client that runs a batch of round trips when asked and posts a semaphore when the batch is done.
/// The semaphore and payload are made once, so a batch itself allocates nothing of its own.
final class BatchClient: TCPStreamDelegate, @unchecked Sendable {  // Safe: fields touched on the client loop.
    let payload: UnsafeMutableRawBufferPointer
    let done: UnsafeMutablePointer<sem_t>
    var stream: TCPStream?
    var remaining = 0
    var pending = 0

    init(size: Int) {
        self.payload = .allocate(byteCount: size, alignment: 8)
        self.payload.initializeMemory(as: UInt8.self, repeating: UInt8(ascii: "x"))
        self.done = .allocate(capacity: 1)
        sem_init(self.done, 0, 0)
    }

    func start(_ count: Int) {
        self.remaining = count
        if count == 0 {
            sem_post(self.done)
            return
        }
        try? self.stream?.write(UnsafeRawBufferPointer(self.payload))
    }

    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer) {
        self.pending += bytes.count
        while self.pending >= self.payload.count {
            self.pending -= self.payload.count
            self.remaining -= 1
            if self.remaining > 0 {
                try? stream.write(UnsafeRawBufferPointer(self.payload))
            } else {
                sem_post(self.done)
            }
        }
    }
}

final class Fixture: @unchecked Sendable {  // Safe: built once in setup, then read-only off the loops.
    let group: LoopGroup
    let server: TCPServer
    let client: BatchClient

    init() throws {
        self.group = try LoopGroup(loopCount: 2)
        let echo = Echo()
        self.server = try self.group.loops[0].listen(host: "127.0.0.1", port: 0) { stream in
            stream.delegate = echo
            stream.startReading()
        }
        let client = BatchClient(size: 64)
        self.client = client
        let loop = self.group.loops[1]
        let port = self.server.port
        loop.execute {
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { fatalError("connect: \(result)") }
                client.stream = stream
                stream.delegate = client
                stream.startReading()
                client.start(10_000)  // Warm-up: buffers, caches and the inbox array reach their size.
            }
        }
        sem_wait(client.done)
    }

    /// Runs `count` round trips and waits for them.
    func roundTrips(_ count: Int) {
        let client = self.client
        self.group.loops[1].execute { client.start(count) }
        sem_wait(client.done)
    }
}

nonisolated(unsafe) var fixture: Fixture?

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.mallocCountTotal, .wallClock, .cpuTotal],
        warmupIterations: 10,
        maxDuration: .seconds(5),
        maxIterations: 2_000
    )

    // What the harness itself allocates around one iteration, to subtract from the rows below.
    Benchmark("Baseline: empty iteration") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(0) }
    }

    // One cross-thread hop: execute() from this thread plus the semaphore back.
    Benchmark(
        "Loop.execute hop x1",
        closure: { benchmark in
            for _ in benchmark.scaledIterations {
                fixture!.roundTrips(0)
            }
        },
        setup: { fixture = try Fixture() },
        teardown: {
            fixture?.group.shutdown()
            fixture = nil
        }
    )

    Benchmark(
        "TCP round trips x1000, 64 B, two loops",
        closure: { benchmark in
            for _ in benchmark.scaledIterations {
                fixture!.roundTrips(1000)
            }
        },
        setup: { fixture = try Fixture() },
        teardown: {
            fixture?.group.shutdown()
            fixture = nil
        }
    )
}
