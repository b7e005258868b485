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
        // The second's counts, in place of the older sums (kept in `current`, which becomes `previous`).
        var total: UInt64 = 0
        for index in 0..<self.length {
            let count = self.current[index] &- self.previous[index]
            self.previous[index] = count
            total &+= count
        }
        let p50 = Self.value(atPercentile: 50, of: self.previous, self.length, total)
        let p99 = Self.value(atPercentile: 99, of: self.previous, self.length, total)
        let encoded = total > 0 ? HistogramCodec.encode(counts: UnsafeBufferPointer(start: self.previous, count: self.length)) : nil
        swap(&self.previous, &self.current)
        let sent = self.runs.reduce(0) { $0 + $1.live.sent }
        let received = self.runs.reduce(0) { $0 + $1.live.received }
        let errors = self.runs.reduce(0) { $0 + $1.live.errors }
        let hasLatencies = total > 0
        self.seconds.append(SeriesSecond(
            t: Double(self.last.time - self.start) / 1e9,
            unixTime: Double(Clock.unixMicroseconds(atMonotonic: self.last.time, wallOffset: self.wallOffset)) / 1e6,
            seconds: Double(now - self.last.time) / 1e9,
            sent: sent - self.last.sent, received: received - self.last.received, errors: errors - self.last.errors,
            p50Ms: hasLatencies ? Double(p50) / 1e6 : nil,
            p99Ms: hasLatencies ? Double(p99) / 1e6 : nil,
            histogram: encoded))
        self.last = (now, sent, received, errors)
    }
}

extension SeriesRecorder {
    /// The value at `percentile` of counts in LatencyCounts' layout, as HdrHistogram reports it: the
    /// highest value equivalent to the sub-bucket where the running count reaches the percentile's share.
    static func value(atPercentile percentile: Double, of counts: UnsafeMutablePointer<UInt64>, _ length: Int, _ total: UInt64) -> UInt64 {
        guard total > 0 else { return 0 }
        // As hdrhistogram-swift counts it: one ulp under the percentile, its share rounded up.
        let wanted = max(1, UInt64((percentile.nextDown * Double(total) / 100).rounded(.up)))
        var running: UInt64 = 0
        for index in 0..<length {
            running &+= counts[index]
            if running >= wanted {
                // The sub-bucket's highest value: the next sub-bucket's lowest, less one.
                return LatencyCounts.lowestValue(atIndex: index + 1) &- 1
            }
        }
        return 0
    }
}

/// A pointer handed to a loop for the length of a `runAndWait`.
struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt64>
    init(_ pointer: UnsafeMutablePointer<UInt64>) { self.pointer = pointer }
}
