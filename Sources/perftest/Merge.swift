import Foundation
import Histogram

/// `perftest merge`: results of runs made at the same time, from several hosts or processes, as one.
extension Report {
    struct MergeError: Error, CustomStringConvertible {
        let description: String
    }

    static func read(from path: String) throws -> Report {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw MergeError(description: "cannot read it (\((error as NSError).localizedDescription))")
        }
        do {
            return try JSONDecoder().decode(Report.self, from: data)
        } catch {
            throw MergeError(description: "not a perftest -json result (\(error))")
        }
    }

    /// One result from `reports`: counts and rates summed (the runs ran at the same time), histograms
    /// added, series aligned on wall-clock seconds, CPU per 1,000 weighted by each run's round trips.
    static func merged(_ reports: [Report], files: [String]) throws -> Report {
        guard var merged = reports.first else { throw MergeError(description: "no runs") }
        for (report, file) in zip(reports, files).dropFirst() {
            for (name, a, b) in [("mode", merged.mode, report.mode), ("payload", "\(merged.payloadBytes)", "\(report.payloadBytes)"),
                                 ("compression", merged.compression, report.compression), ("data", merged.data, report.data)]
            where a != b {
                throw MergeError(description: "\(file): \(name) \(b), where the first run's is \(a): only runs of one kind merge")
            }
        }
        var histogram = LoopRun.makeHistogram()
        for (report, file) in zip(reports, files) {
            guard let encoded = report.histogram else {
                if report.latency != nil { throw MergeError(description: "\(file): latencies without their histogram (an older perftest's JSON)") }
                continue
            }
            do {
                histogram.add(try HistogramCodec.decode(encoded))
            } catch {
                throw MergeError(description: "\(file): its histogram: \(error)")
            }
        }
        let targets = reports.map(\.target).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        merged.target = targets.joined(separator: ", ")
        merged.clients = reports.reduce(0) { $0 + $1.clients }
        merged.durationSeconds = reports.map(\.durationSeconds).max()!
        merged.measuredSeconds = reports.map(\.measuredSeconds).max()!
        merged.setupSeconds = reports.map(\.setupSeconds).max()!
        merged.stats = reports.dropFirst().reduce(merged.stats) { $0 + $1.stats }
        merged.sentPerSecond = reports.reduce(0) { $0 + $1.sentPerSecond }
        merged.receivedPerSecond = reports.reduce(0) { $0 + $1.receivedPerSecond }
        let s = merged.stats
        switch Mode(rawValue: merged.mode) {
        case .blast?, .connect?: merged.lossPercent = 0
        case .fanout?: merged.lossPercent = s.expected > 0 ? Double(s.lost) * 100 / Double(s.expected) : 0
        default: merged.lossPercent = s.sent > 0 ? Double(s.lost) * 100 / Double(s.sent) : 0
        }
        merged.latency = Self.latency(of: histogram, sumNanoseconds: s.latencySumNanoseconds)
        // The encoding keeps each count's sub-bucket, not the exact extremes: the largest is each run's own.
        if let max = reports.compactMap(\.latency?.maxMs).max() { merged.latency?.maxMs = max }
        merged.histogram = histogram.totalCount > 0 ? HistogramCodec.encode(histogram) : nil
        func weighted(_ value: (Report) -> Double?) -> Double? {
            var sum = 0.0, weight = 0.0
            for report in reports {
                guard let v = value(report) else { return nil }
                let w = Double(max(report.stats.received, report.stats.sent, 1))
                sum += v * w
                weight += w
            }
            return weight > 0 ? sum / weight : nil
        }
        merged.cpuSecondsPer1000 = weighted(\.cpuSecondsPer1000)
        merged.serverCPUSecondsPer1000 = nil  // Each run measured its own host's server: not one figure.
        merged.serverPID = nil
        merged.firstError = reports.lazy.compactMap(\.firstError).first
        merged.stoppedBy = reports.lazy.compactMap(\.stoppedBy).first
        // -rate: the runs' rates add up, and their service times as the latencies do.
        let rates = reports.compactMap(\.rate)
        merged.rate = rates.count == reports.count ? rates.reduce(0, +) : nil
        let connectRates = reports.compactMap(\.connectRate)
        merged.connectRate = connectRates.count == reports.count ? connectRates.reduce(0, +) : nil
        var service = LoopRun.makeHistogram()
        for (report, file) in zip(reports, files) {
            guard let encoded = report.serviceHistogram else { continue }
            do {
                service.add(try HistogramCodec.decode(encoded))
            } catch {
                throw MergeError(description: "\(file): its service-time histogram: \(error)")
            }
        }
        merged.serviceTime = Self.latency(of: service, sumNanoseconds: 0)
        merged.serviceTime?.meanMs = service.totalCount > 0 ? service.mean / 1e6 : 0
        if let max = reports.compactMap(\.serviceTime?.maxMs).max() { merged.serviceTime?.maxMs = max }
        merged.serviceHistogram = service.totalCount > 0 ? HistogramCodec.encode(service) : nil
        merged.series = try Self.mergedSeries(reports, files: files)
        merged.command = CommandLine.arguments
        merged.machine = .current
        merged.mergedFrom = zip(reports, files).flatMap { report, file in
            report.mergedFrom ?? [Source(file: file, command: report.command, machine: report.machine)]
        }
        return merged
    }

    /// The runs' seconds summed by the wall-clock second they started in.
    private static func mergedSeries(_ reports: [Report], files: [String]) throws -> [SeriesSecond]? {
        let all = reports.compactMap(\.series)
        guard !all.isEmpty else { return nil }
        var bySecond: [Int: (second: SeriesSecond, histogram: Histogram<UInt64>)] = [:]
        for (series, file) in zip(all, files) {
            for entry in series {
                let key = Int(entry.unixTime.rounded(.down))
                var slot = bySecond[key] ?? (SeriesSecond(t: 0, unixTime: Double(key), seconds: 0, sent: 0, received: 0, errors: 0),
                                             LoopRun.makeHistogram())
                slot.second.seconds = max(slot.second.seconds, entry.seconds)
                slot.second.sent += entry.sent
                slot.second.received += entry.received
                slot.second.errors += entry.errors
                if let encoded = entry.histogram {
                    do {
                        slot.histogram.add(try HistogramCodec.decode(encoded))
                    } catch {
                        throw MergeError(description: "\(file): the histogram of its second at t=\(entry.t): \(error)")
                    }
                }
                bySecond[key] = slot
            }
        }
        guard let first = bySecond.keys.min() else { return [] }
        return bySecond.keys.sorted().map { key in
            var (second, histogram) = bySecond[key]!
            second.t = Double(key - first)
            if histogram.totalCount > 0 {
                second.p50Ms = Double(histogram.valueAtPercentile(50)) / 1e6
                second.p99Ms = Double(histogram.valueAtPercentile(99)) / 1e6
                second.histogram = HistogramCodec.encode(histogram)
            }
            return second
        }
    }
}
