import Foundation
import Histogram
import StrandsWS
import Testing
@testable import perftest

@Suite("perftest results: histograms, thresholds, merge")
struct LoadTestingTests {
    /// Values across the layout, some many times.
    func sampleHistogram(seed: UInt64) -> Histogram<UInt64> {
        var histogram = LoopRun.makeHistogram()
        var state = seed
        for n in 0..<5_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let value = (state >> 20) % (UInt64(1) << UInt64(10 + n % 26))
            histogram.record(value, count: UInt64(1 + n % 4))
        }
        histogram.record(LoopRun.highestLatency)
        return histogram
    }

    @Test("HISTF round trip: every count, the extremes' sub-buckets and every percentile come back")
    func histogramRoundTrip() throws {
        let original = self.sampleHistogram(seed: 7)
        let text = HistogramCodec.encode(original)
        #expect(text.hasPrefix("HISTF"))
        let decoded = try HistogramCodec.decode(text)
        #expect(decoded.totalCount == original.totalCount)
        for percentile in [0.0, 1, 25, 50, 90, 99, 99.9, 99.99] {
            #expect(decoded.valueAtPercentile(percentile) == original.valueAtPercentile(percentile), "p\(percentile)")
        }
        // The encoding holds sub-buckets, not the exact largest value (no HdrHistogram encoding does).
        #expect(decoded.valuesAreEquivalent(decoded.valueAtPercentile(100), original.valueAtPercentile(100)))
        #expect(decoded.max == original.max)
        let empty = try HistogramCodec.decode(HistogramCodec.encode(LoopRun.makeHistogram()))
        #expect(empty.totalCount == 0)
    }

    @Test("the series' percentiles from bare counts agree with the histogram's, and so does its encoding")
    func seriesPercentiles() throws {
        let histogram = self.sampleHistogram(seed: 11)
        let length = LatencyCounts.index(LoopRun.highestLatency) + 1
        let counts = UnsafeMutablePointer<UInt64>.allocate(capacity: length)
        defer { counts.deallocate() }
        for index in 0..<length { counts[index] = histogram.countForValue(LatencyCounts.lowestValue(atIndex: index)) }
        for percentile in [1.0, 50, 90, 99, 99.9] {
            let value = SeriesRecorder.value(atPercentile: percentile, of: counts, length, histogram.totalCount)
            // The histogram clamps to its exact extremes; bare counts give the sub-bucket's top.
            #expect(histogram.valuesAreEquivalent(value, histogram.valueAtPercentile(percentile)), "p\(percentile)")
            #expect(value == histogram.highestEquivalentForValue(histogram.valueAtPercentile(percentile)), "p\(percentile)")
        }
        let fromCounts = try HistogramCodec.decode(HistogramCodec.encode(counts: UnsafeBufferPointer(start: counts, count: length)))
        #expect(fromCounts.totalCount == histogram.totalCount)
        #expect(fromCounts.valueAtPercentile(99) == histogram.valueAtPercentile(99))
    }

    @Test("a histogram written by HdrHistogram's Python library (hdrhistogram 0.10) decodes to its counts")
    func foreignHistogram() throws {
        // HdrHistogram(1, 60 s in ns, 3) with 1,000 ns × 5, 25,000 × 3, 1,500,000 × 2 and 7 s × 1, encode().
        let text = "HISTFAAAAC54nJNpmSzMwMDAywABzFCaEST2wz2Cwf4DROA8P9dDD7adcSxTDzMyAQCn2gi4"
        let histogram = try HistogramCodec.decode(text)
        #expect(histogram.totalCount == 11)
        #expect(histogram.countForValue(1_000) == 5)
        #expect(histogram.countForValue(25_000) == 3)
        #expect(histogram.countForValue(1_500_000) == 2)
        #expect(histogram.valuesAreEquivalent(histogram.max, 7_000_000_000))
    }

    @Test("malformed histograms are errors, not crashes", arguments: [
        "", "not base64!", "SElTVA==", "HISTFAAAAC54nJNpmSzMwMDAywABzFCaEST2wz2Cwf4D",
        // A V2 header claiming a payload past its end, uncompressed.
        Data([0x1c, 0x84, 0x93, 0x13, 0, 0, 0x10, 0] + [UInt8](repeating: 0, count: 32)).base64EncodedString(),
    ])
    func malformedHistograms(text: String) {
        #expect(throws: HistogramCodec.DecodeError.self) { try HistogramCodec.decode(text) }
    }

    @Test("thresholds parse with units and operators, and judge a result")
    func thresholds() throws {
        let p99 = try Threshold(parsing: "p99 < 5ms")
        #expect(p99.metric == .p99 && p99.comparison == .less && p99.limit == 5)
        #expect(try Threshold(parsing: "p50<=800us").limit == 0.8)
        #expect(try Threshold(parsing: "p99.9<2s").limit == 2000)
        #expect(try Threshold(parsing: "p999<250000ns").limit == 0.25)
        #expect(try Threshold(parsing: "rate>=100000").comparison == .greaterOrEqual)
        #expect(try Threshold(parsing: "loss==0").metric == .loss)
        #expect(try Threshold(parsing: "loss%<0.1").metric == .lossPercent)
        #expect(try Threshold(parsing: "errors!=3").comparison == .notEqual)
        for bad in ["p99", "p99~5ms", "latency<5", "p99<fast", "p99<-1ms", "rate>=", "<5", "p99<5parsecs"] {
            #expect(throws: Threshold.ParseError.self, "\(bad)") { try Threshold(parsing: bad) }
        }
    }

    /// A real run against a real server, in this process.
    func run(port: Int, clients: Int) -> RunResult {
        let options = RunOptions(url: "ws://127.0.0.1:\(port)/ws/perf", clients: clients, duration: 1, mode: .echo, payload: 32,
                                 rampup: 0, timeout: 1, grace: 1, window: 8)
        let group = try! LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        return Runner.run(options, group: group, live: false)
    }

    @Test("merge of two runs is the run of both: counts summed, percentiles of the added histograms, series aligned")
    func mergeOfTwo() throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let server = WebSocketServer(group: group, configuration: WebSocketConfiguration(), handler: EchoBack())
        let port = try server.listen(host: "127.0.0.1", port: 0).port
        let a = self.run(port: port, clients: 4), b = self.run(port: port, clients: 6)
        let directory = FileManager.default.temporaryDirectory
        let files = ["a", "b"].map { directory.appendingPathComponent("merge-\($0)-\(UUID().uuidString).json").path }
        defer { for file in files { try? FileManager.default.removeItem(atPath: file) } }
        try Report(a).writeJSON(to: files[0])
        try Report(b).writeJSON(to: files[1])

        let merged = try Report.merged(files.map { try Report.read(from: $0) }, files: files)
        #expect(merged.stats.sent == a.stats.sent + b.stats.sent)
        #expect(merged.stats.received == a.stats.received + b.stats.received)
        #expect(merged.stats.lost == 0)
        #expect(merged.clients == 10)
        // Ground truth: the two runs' own histograms added, never through the encoding.
        var both = a.histogram
        both.add(b.histogram)
        let latency = try #require(merged.latency)
        #expect(latency.samples == both.totalCount)
        #expect(latency.p99Ms == Double(both.valueAtPercentile(99)) / 1e6)
        #expect(latency.p50Ms == Double(both.valueAtPercentile(50)) / 1e6)
        #expect(try HistogramCodec.decode(#require(merged.histogram)).totalCount == both.totalCount)
        // The runs followed each other: the series spans both, each second summed once.
        let series = try #require(merged.series)
        #expect(series.reduce(0) { $0 + $1.sent } == a.series.reduce(0) { $0 + $1.sent } + b.series.reduce(0) { $0 + $1.sent })
        #expect(series.map(\.t) == series.map(\.t).sorted())
        #expect(merged.mergedFrom?.map(\.file) == files)
        // A run's own series: its seconds add up to what it sent.
        #expect(a.series.reduce(0) { $0 + $1.sent } == a.stats.sent)
        #expect(a.series.reduce(0) { $0 + $1.received } == a.stats.received)
        #expect(a.series.allSatisfy { $0.histogram == nil || $0.histogram!.hasPrefix("HISTF") })
    }
}

final class EchoBack: WebSocketHandler {
    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) { socket.send(message.opcode, message.bytes) }
}
