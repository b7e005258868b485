import Foundation
import Histogram
import StrandsTestSupport
import Testing
@testable import perftest

@Suite("perftest")
struct PerfTestTests {
    func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test("messages match the Go tool's JSON byte for byte")
    func messageFormat() {
        var builder = MessageBuilder(type: "ping", payload: 5)
        defer { builder.free() }
        #expect(self.text(builder.build(id: 0, microseconds: 1_732_780_800_123_456))
            == #"{"type":"ping","id":0,"ts":1732780800.123456,"data":"xxxxx"}"#)
        // Go's encoding/json writes a float64 in its shortest form: no trailing zeros, no ".0".
        #expect(self.text(builder.build(id: 42, microseconds: 1_732_780_800_120_000))
            == #"{"type":"ping","id":42,"ts":1732780800.12,"data":"xxxxx"}"#)
        #expect(self.text(builder.build(id: 7, microseconds: 1_732_780_800_000_000))
            == #"{"type":"ping","id":7,"ts":1732780800,"data":"xxxxx"}"#)
        #expect(self.text(builder.build(id: 123_456_789_012, microseconds: 1_732_780_800_000_305))
            == #"{"type":"ping","id":123456789012,"ts":1732780800.000305,"data":"xxxxx"}"#)
        // Leading and trailing zeros of the fraction at once, and each end alone.
        for (fraction, text) in [(100, "0001"), (100_000, "1"), (1, "000001"), (10_010, "01001"), (999_999, "999999")] {
            #expect(self.text(builder.build(id: 3, microseconds: 1_732_780_800_000_000 + UInt64(fraction)))
                == #"{"type":"ping","id":3,"ts":1732780800."# + text + #","data":"xxxxx"}"#)
        }
        var echo = MessageBuilder(type: "echo", payload: 64)
        defer { echo.free() }
        let message = echo.build(id: 1, microseconds: 1_732_780_800_500_001)
        #expect(message.count == #"{"type":"echo","id":1,"ts":1732780800.500001,"data":""}"#.utf8.count + 64)
        #expect(MessageBuilder.parseID(message) == 1)
        #expect(echo.replyID(message) == 1)
    }

    @Test("-data text: the payload's length, valid JSON, and data that differs from message to message")
    func textData() throws {
        var builder = MessageBuilder(type: "echo", payload: 1000, data: .text)
        defer { builder.free() }
        var seen = Set<String>()
        for id: UInt64 in 1...50 {
            let message = builder.build(id: id, microseconds: 1_732_780_800_500_001)
            #expect(message.count == #"{"type":"echo","id":"#.utf8.count + "\(id)".utf8.count
                + #","ts":1732780800.500001,"data":""}"#.utf8.count + 1000)
            #expect(builder.replyID(message) == id)
            let object = try JSONSerialization.jsonObject(with: Data(message)) as? [String: Any]
            let data = try #require(object?["data"] as? String)
            #expect(data.utf8.count == 1000)
            #expect(data.contains("symbol=SYM"))
            seen.insert(data)
        }
        #expect(seen.count >= 45, "consecutive messages should carry different data, \(seen.count) of 50 differ")
        // The default stays the Go tool's.
        var x = MessageBuilder(type: "echo", payload: 1000)
        defer { x.free() }
        #expect(self.text(x.build(id: 1, microseconds: 0)).hasSuffix(String(repeating: "x", count: 1000) + #""}"#))
    }

    @Test("the fast builder agrees with plain formatting, across second boundaries and digit counts")
    func messageFormatAgainstReference() {
        var builder = MessageBuilder(type: "pingpong", payload: 3)
        defer { builder.free() }
        func reference(_ id: UInt64, _ microseconds: UInt64) -> String {
            var ts = "\(microseconds / 1_000_000)"
            var fraction = String(microseconds % 1_000_000)
            fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
            while fraction.last == "0" { fraction.removeLast() }
            if !fraction.isEmpty { ts += "." + fraction }
            return #"{"type":"pingpong","id":"# + "\(id)" + #","ts":"# + ts + #","data":"xxx"}"#
        }
        var generator = SystemRandomNumberGenerator()
        var microseconds: UInt64 = 1_732_780_799_999_990
        for round in 0..<20_000 {
            // Mostly small steps (the cached seconds are reused and renewed), now and then a jump, and
            // runs at one microsecond (a burst's messages share their time, and the text of it).
            if round % 997 == 0 {
                microseconds += UInt64.random(in: 0...1 << 40, using: &generator)
            } else if round % 4 != 1 {
                microseconds += UInt64.random(in: 0...400, using: &generator)
            }
            let id = round % 3 == 0 ? UInt64(round) : UInt64.random(in: 0...UInt64.max >> UInt64.random(in: 0...63, using: &generator),
                                                                      using: &generator)
            let built = builder.build(id: id, microseconds: microseconds)
            #expect(self.text(built) == reference(id, microseconds))
            if id < 10_000_000_000_000_000_000 { #expect(builder.replyID(built) == id) }
        }
        #expect(self.text(builder.build(id: 9, microseconds: 0)) == #"{"type":"pingpong","id":9,"ts":0,"data":"xxx"}"#)
    }

    @Test("eight digits at once: every width, every digit in every place")
    func eightDigits() {
        var values: [UInt64] = [0, 99_999_999]
        var power: UInt64 = 1
        for _ in 0..<8 {
            values += [power - 1, power, power + 1, 2 * power - 1]
            power *= 10
        }
        for place in 0..<8 {
            for digit: UInt64 in 0...9 { values.append(digit * [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000][place] + 12) }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 { values.append(UInt64.random(in: 0..<100_000_000, using: &generator)) }
        for value in values where value < 100_000_000 {
            let (word, count) = MessageBuilder.eightDigits(value)
            let text = withUnsafeBytes(of: word) { String(decoding: $0, as: UTF8.self) }
            let expected = String(value)
            #expect(count == expected.count, "\(value)")
            #expect(text == String(repeating: "0", count: 8 - expected.count) + expected, "\(value)")
        }
    }

    @Test("the reply's id is found, and text that is not ours gives none")
    func parseID() {
        for (text, id) in [(#"{"type":"echo","id":98765,"ts":1}"#, UInt64(98765)), (#"{"id":3}"#, 3)] {
            #expect(Array(text.utf8).withUnsafeBytes { MessageBuilder.parseID($0) } == id)
        }
        for text in ["hello", #"{"type":"echo","id":"x"}"#, ""] {
            #expect(Array(text.utf8).withUnsafeBytes { MessageBuilder.parseID($0) } == nil)
        }
    }

    @Test("a client's record stays small: 5,000 of them are walked per round of replies")
    func recordSize() {
        #expect(MemoryLayout<InFlight>.size <= 28)
        #expect(MemoryLayout<ClientState>.stride <= 40)
    }

    @Test("latency counts land where the HDR histogram puts them, and move into one unchanged")
    func latencyCounts() {
        let reference = LoopRun.makeHistogram()
        // Every bucket's edges and a spread of values inside each, from 0 to the highest trackable.
        var values: [UInt64] = [0, 1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, LoopRun.highestLatency]
        var generator = SystemRandomNumberGenerator()
        for shift in 0..<36 {
            let base = UInt64(1) << shift
            values += [base - 1, base, base + 1, base + base / 3]
            for _ in 0..<20 { values.append(UInt64.random(in: base...(2 * base), using: &generator)) }
        }
        values = values.filter { $0 <= LoopRun.highestLatency }
        var counts = LatencyCounts(highestTrackableValue: LoopRun.highestLatency)
        defer { counts.free() }
        for value in values {
            let index = LatencyCounts.index(value)
            #expect(index >= 0 && index < counts.length, "value \(value)")
            #expect(LatencyCounts.lowestValue(atIndex: index) == reference.lowestEquivalentForValue(value), "value \(value)")
        }
        var direct = LoopRun.makeHistogram()
        for (n, value) in values.enumerated() {
            // Some values several times, so that counts above one move too.
            for _ in 0...(n % 3) {
                let counted = counts.record(value)
                #expect(counted)
                direct.record(value)
            }
        }
        let past = counts.record(2 * LoopRun.highestLatency)
        #expect(!past)  // Past the layout: refused, as the histogram does.
        var moved = LoopRun.makeHistogram()
        counts.add(to: &moved)
        #expect(moved.totalCount == direct.totalCount)
        #expect(moved.max == direct.max)
        #expect(moved.maxRecorded == direct.maxRecorded)
        #expect(moved.min == direct.min)
        for percentile in [0.0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100] {
            #expect(moved.valueAtPercentile(percentile) == direct.valueAtPercentile(percentile), "p\(percentile)")
        }
    }

    @Test("the in-flight ring keeps order across growth and wrap-around")
    func inFlightRing() {
        var ring = InFlight()
        defer { ring.free() }
        var expected: [UInt64] = []
        for round in 0..<200 {
            // Grows for a while (the ring wraps and doubles), then drains to empty and starts over.
            let pushes = round < 120 ? round % 7 + 1 : round % 3
            for i in 0..<pushes {
                let time = UInt64(round * 100 + i) * 2 + 1
                ring.push(at: time)
                expected.append(time)
            }
            for _ in 0..<(round < 120 ? round % 5 : 6) where !expected.isEmpty {
                #expect(ring.firstTime == expected.removeFirst())
                ring.removeFirst()
            }
            #expect(ring.count == expected.count)
            #expect(ring.isEmpty == expected.isEmpty)
            #expect(ring.firstTime == expected.first)
        }
        ring.removeAll()
        #expect(ring.firstTime == nil)
        ring.push(at: 2)
        ring.push(at: 4)
        ring.removeFirst()
        #expect(ring.firstTime == 4)
    }

    @Test("the report's printf covers what the live line uses")
    func format() {
        #expect(String(format2: "[%5.1fs] %d/%d %s %%", 2.04, 3, 10, "ok") == "[  2.0s] 3/10 ok %")
        #expect(fixed(0.005, 2) == "0.01")
        #expect(fixed(-1.25, 1) == "-1.3")
        #expect(1_234_567.formatted() == "1,234,567")
    }
}
