import Histogram

/// One loop's latency counts, kept in the layout of the HDR histogram they end up in, and handed to a
/// `Histogram<UInt64>` (hdrhistogram-swift) once, when the run ends.
///
/// Why not record into the histogram itself: its `record` is generic code that reads its layout from
/// the struct at run time, checks the array's uniqueness and bounds and keeps min and max, about 60
/// instructions a reply (a tenth of what perftest spends per message in echo). Here the layout is fixed
/// when compiled (lowest discernible value 1 ns, three significant digits), and a reply costs one count
/// increment after a leading-zero count and a shift.
///
/// The layout is HDR's: 2,048 sub-buckets (the smallest power of two that holds 2 × 10³ values), so
/// bucket 0 counts 0...2,047 one by one and each further bucket counts the next doubling with half as
/// many sub-buckets twice as wide; value `v` counts at `bucket × 1,024 + v >> bucket`. Moved into the
/// histogram, each count is recorded at the lowest value its sub-bucket holds, which is the same
/// sub-bucket, except that the smallest and the largest value are kept exact and recorded as
/// themselves (percentiles are clamped to them), so the histogram comes out exactly as if every value
/// had been recorded into it one by one.
struct LatencyCounts {
    /// log2 of half the sub-bucket count: three significant digits.
    static let halfMagnitude = 10
    private let counts: UnsafeMutablePointer<UInt64>
    /// Counts held: every index up to that of the highest trackable value.
    let length: Int
    /// The smallest and largest values counted (`UInt64.max` and 0 while none is).
    private(set) var minimum = UInt64.max
    private(set) var maximum: UInt64 = 0

    init(highestTrackableValue: UInt64) {
        self.length = Self.index(highestTrackableValue) + 1
        self.counts = .allocate(capacity: self.length)
        self.counts.initialize(repeating: 0, count: self.length)
    }

    func free() { self.counts.deallocate() }

    /// The index of the sub-bucket that counts `value`.
    @inline(__always)
    static func index(_ value: UInt64) -> Int {
        // The bucket: how many doublings `value` is past bucket 0's 0...2047 (the OR maps those to 0).
        let bucket = (64 - Self.halfMagnitude - 1) - (value | (1 << (Self.halfMagnitude + 1) - 1)).leadingZeroBitCount
        return bucket << Self.halfMagnitude + Int(truncatingIfNeeded: value >> UInt64(bucket))
    }

    /// The lowest value sub-bucket `index` counts.
    static func lowestValue(atIndex index: Int) -> UInt64 {
        var bucket = (index >> Self.halfMagnitude) - 1
        var subBucket = (index & (1 << Self.halfMagnitude - 1)) + 1 << Self.halfMagnitude
        if bucket < 0 {
            subBucket -= 1 << Self.halfMagnitude
            bucket = 0
        }
        return UInt64(subBucket) << UInt64(bucket)
    }

    /// Counts `value`; `false` (and nothing counted) above the highest trackable value's sub-bucket.
    @inline(__always) @discardableResult
    mutating func record(_ value: UInt64) -> Bool {
        let index = Self.index(value)
        guard index < self.length else { return false }
        self.counts[index] &+= 1
        self.minimum = Swift.min(self.minimum, value)
        self.maximum = Swift.max(self.maximum, value)
        return true
    }

    /// Adds this loop's counts so far to `totals` (``length`` of them), for the per-second series.
    func add(into totals: UnsafeMutablePointer<UInt64>) {
        guard self.maximum >= self.minimum else { return }
        for index in Self.index(self.minimum)...Self.index(self.maximum) { totals[index] &+= self.counts[index] }
    }

    /// Adds every count to `histogram` (one record per sub-bucket used).
    func add(to histogram: inout Histogram<UInt64>) {
        guard self.maximum >= self.minimum else { return }  // Nothing counted.
        let lowest = Self.index(self.minimum)
        let highest = Self.index(self.maximum)
        for index in lowest...highest where self.counts[index] != 0 {
            var count = self.counts[index]
            // The extremes as themselves: a histogram's min and max recorded are exact values.
            if index == lowest {
                histogram.record(self.minimum)
                count -= 1
            }
            if index == highest && count > 0 {
                histogram.record(self.maximum)
                count -= 1
            }
            if count > 0 { histogram.record(Self.lowestValue(atIndex: index), count: count) }
        }
    }
}
