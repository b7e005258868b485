import Histogram
import StrandsCLI

/// One second of a run (the last may be shorter): what was sent, received and failed in it, and its
/// latencies (their percentiles, and the histogram itself so that `merge` can combine seconds exactly).
struct SeriesSecond: Codable, Sendable {
    /// Seconds since the run's first connect, at this second's start.
    var t: Double
    /// Wall-clock time (Unix seconds) at its start: `merge` aligns runs from several hosts on it.
    var unixTime: Double
    var seconds: Double
    var sent: Int
    var received: Int
    var errors: Int
    var p50Ms: Double?
    var p99Ms: Double?
    /// The second's latencies, "HISTF…" (``HistogramCodec``), nanoseconds; nil when there were none.
    var histogram: String?
}

/// Builds the series on the runner's thread, once a second: the loops' live counters, and their latency
/// counts so far summed, less the previous second's sums. The loops do nothing more per reply for it.
final class SeriesRecorder {
    private let runs: [LoopRun]
    private let length: Int
    private var previous: UnsafeMutablePointer<UInt64>
    private var current: UnsafeMutablePointer<UInt64>
    private var last: (time: UInt64, sent: Int, received: Int, errors: Int)
    private let start: UInt64
    private let wallOffset = Clock.wallOffset
    private(set) var seconds: [SeriesSecond] = []

    init(runs: [LoopRun], start: UInt64) {
        self.runs = runs
        self.length = LatencyCounts.index(LoopRun.highestLatency) + 1
        self.previous = .allocate(capacity: self.length)
        self.previous.initialize(repeating: 0, count: self.length)
        self.current = .allocate(capacity: self.length)
        self.current.initialize(repeating: 0, count: self.length)
        self.start = start
        self.last = (start, 0, 0, 0)
    }

    deinit {
        self.previous.deallocate()
        self.current.deallocate()
    }

    /// Closes the second (or the part of one) that ends at `now`.
    func tick(_ now: UInt64) {
        guard now > self.last.time + 1_000_000 else { return }  // Under a millisecond: nothing to tell.
        self.current.update(repeating: 0, count: self.length)
        let totals = UncheckedPointer(self.current)
        for run in self.runs { _ = run.loop.runAndWait { run.latencies.add(into: totals.pointer) } }
        var interval = LoopRun.makeHistogram()
        for index in 0..<self.length where self.current[index] != self.previous[index] {
            interval.record(LatencyCounts.lowestValue(atIndex: index), count: self.current[index] &- self.previous[index])
        }
        swap(&self.previous, &self.current)
        let sent = self.runs.reduce(0) { $0 + $1.live.sent }
        let received = self.runs.reduce(0) { $0 + $1.live.received }
        let errors = self.runs.reduce(0) { $0 + $1.live.errors }
        let hasLatencies = interval.totalCount > 0
        self.seconds.append(SeriesSecond(
            t: Double(self.last.time - self.start) / 1e9,
            unixTime: Double(Clock.unixMicroseconds(atMonotonic: self.last.time, wallOffset: self.wallOffset)) / 1e6,
            seconds: Double(now - self.last.time) / 1e9,
            sent: sent - self.last.sent, received: received - self.last.received, errors: errors - self.last.errors,
            p50Ms: hasLatencies ? Double(interval.valueAtPercentile(50)) / 1e6 : nil,
            p99Ms: hasLatencies ? Double(interval.valueAtPercentile(99)) / 1e6 : nil,
            histogram: hasLatencies ? HistogramCodec.encode(interval) : nil))
        self.last = (now, sent, received, errors)
    }
}

/// A pointer handed to a loop for the length of a `runAndWait`.
struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt64>
    init(_ pointer: UnsafeMutablePointer<UInt64>) { self.pointer = pointer }
}
