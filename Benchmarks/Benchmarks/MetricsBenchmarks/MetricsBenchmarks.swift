import Benchmark
import Dispatch
import CoreMetrics
import Metrics
import Prometheus
import Synchronization

// What one message's counter costs: the relaxed atomic each loop's registry bumps today, against a
// swift-metrics Counter backed by swift-prometheus (a call through the factory's handler, then the
// backend's own counter), 1,000 increments per iteration, one thread.

let counted = Atomic<Int>(0)

/// One counter per loop, each in its own allocation (its own cache line), as each loop's registry has.
final class LoopCounter: Sendable {
    let value = Atomic<Int>(0)
    let padding = (0, 0, 0, 0, 0, 0, 0)
}
let perLoop = [LoopCounter(), LoopCounter()]
nonisolated(unsafe) var prometheusCounter: CoreMetrics.Counter?

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal],
                                           maxDuration: .seconds(3), maxIterations: 100_000)

    Benchmark("counter x1000: relaxed atomic (today's registry counters)") { benchmark in
        for _ in benchmark.scaledIterations {
            for _ in 0..<1000 { counted.add(1, ordering: .relaxed) }
            blackHole(counted.load(ordering: .relaxed))
        }
    }

    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
    prometheusCounter = CoreMetrics.Counter(label: "strands_messages_received_total")
    Benchmark("counter x1000: swift-metrics Counter on swift-prometheus") { benchmark in
        let counter = prometheusCounter!
        for _ in benchmark.scaledIterations {
            for _ in 0..<1000 { counter.increment() }
        }
    }

    // Two loops counting messages at once, 100,000 each per iteration: per-loop counters (today) against
    // the one shared Counter a label gives in swift-metrics.
    Benchmark("2 threads x100,000: per-loop relaxed atomics", configuration: .init(maxIterations: 2000)) { benchmark in
        for _ in benchmark.scaledIterations {
            DispatchQueue.concurrentPerform(iterations: 2) { index in
                let counter = perLoop[index]
                for _ in 0..<100_000 { counter.value.add(1, ordering: .relaxed) }
            }
        }
    }

    Benchmark("2 threads x100,000: one swift-metrics Counter on swift-prometheus", configuration: .init(maxIterations: 2000)) { benchmark in
        let counter = prometheusCounter!
        for _ in benchmark.scaledIterations {
            DispatchQueue.concurrentPerform(iterations: 2) { _ in
                for _ in 0..<100_000 { counter.increment() }
            }
        }
    }
}
