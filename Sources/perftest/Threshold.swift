import StrandsCLI

/// A pass/fail condition on a run's result, k6-style: `p99<5ms`, `p50<=800us`, `loss==0`,
/// `rate>=100000`, `errors==0`. A crossed threshold makes perftest exit 99 (k6's code for it).
///
/// Metrics:
/// - latency (milliseconds unless a unit follows the number: `ns`, `us` or `µs`, `ms`, `s`): `p50`, `p90`,
///   `p95`, `p99`, `p99.9` (or `p999`), `max`, `mean`; in connect mode, the opening latency;
/// - `rate` (replies, deliveries or openings per second, as printed), `sent_rate`;
/// - counts: `loss` (messages lost), `errors`, `timeouts`, `connected`, `sent`, `received`;
/// - `loss%` (lost, in percent of what was sent or owed).
struct Threshold: Sendable, CustomStringConvertible {
    enum Metric: String, CaseIterable, Sendable {
        case p50, p90, p95, p99, p999 = "p99.9", max, mean
        case rate, sentRate = "sent_rate"
        case loss, lossPercent = "loss%", errors, timeouts, connected, sent, received

        var isLatency: Bool {
            switch self {
            case .p50, .p90, .p95, .p99, .p999, .max, .mean: return true
            default: return false
            }
        }
    }

    enum Comparison: String, CaseIterable, Sendable {
        // Two-character operators first, so that `<=` is not read as `<`.
        case lessOrEqual = "<=", greaterOrEqual = ">=", equal = "==", notEqual = "!=", less = "<", greater = ">"

        func holds(_ a: Double, _ b: Double) -> Bool {
            switch self {
            case .less: return a < b
            case .lessOrEqual: return a <= b
            case .greater: return a > b
            case .greaterOrEqual: return a >= b
            case .equal: return a == b
            case .notEqual: return a != b
            }
        }
    }

    struct ParseError: Error, CustomStringConvertible {
        let description: String
    }

    let text: String
    let metric: Metric
    let comparison: Comparison
    /// Milliseconds for a latency metric, the plain number otherwise.
    let limit: Double

    var description: String { self.text }

    init(parsing text: String) throws(ParseError) {
        let compact = String(text.filter { !$0.isWhitespace })
        self.text = compact
        guard let comparison = Comparison.allCases.first(where: { compact.contains($0.rawValue) }),
              let range = compact.range(of: comparison.rawValue)
        else { throw ParseError(description: "\(text): expected METRIC OP VALUE, with OP one of < <= > >= == !=") }
        var name = String(compact[..<range.lowerBound]).lowercased()
        if name == "p999" { name = "p99.9" }
        if name == "loss_pct" { name = "loss%" }
        guard let metric = Metric(rawValue: name) else {
            throw ParseError(description: "\(text): unknown metric '\(name)' (one of \(Metric.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var number = String(compact[range.upperBound...])
        var scale = 1.0
        if metric.isLatency {
            for (unit, factor) in [("ns", 1e-6), ("us", 1e-3), ("µs", 1e-3), ("ms", 1.0), ("s", 1000.0)] where number.hasSuffix(unit) {
                number.removeLast(unit.count)
                scale = factor
                break
            }
        } else if number.hasSuffix("%") && metric == .lossPercent {
            number.removeLast()
        }
        guard let value = Double(number), value.isFinite, value >= 0 else {
            throw ParseError(description: "\(text): '\(compact[range.upperBound...])' is not a value\(metric.isLatency ? " (a number, then ns, us, ms or s)" : "")")
        }
        self.metric = metric
        self.comparison = comparison
        self.limit = value * scale
    }

    /// The metric's value in `report` (nil: a latency, and none was measured).
    func value(in report: Report) -> Double? {
        let stats = report.stats
        switch self.metric {
        case .p50: return report.latency?.p50Ms
        case .p90: return report.latency?.p90Ms
        case .p95: return report.latency?.p95Ms
        case .p99: return report.latency?.p99Ms
        case .p999: return report.latency?.p999Ms
        case .max: return report.latency?.maxMs
        case .mean: return report.latency?.meanMs
        case .rate: return report.receivedPerSecond
        case .sentRate: return report.sentPerSecond
        case .loss: return Double(stats.lost)
        case .lossPercent: return report.lossPercent
        case .errors: return Double(stats.errors)
        case .timeouts: return Double(stats.timeouts)
        case .connected: return Double(stats.connected)
        case .sent: return Double(stats.sent)
        case .received: return Double(stats.received)
        }
    }

    /// Whether `report` passes, and the value it was judged on, as printed.
    func check(_ report: Report) -> (passed: Bool, shown: String) {
        guard let value = self.value(in: report) else { return (false, "no latencies measured") }
        let shown = self.metric.isLatency ? "\(fixed(value, 3))ms" : value == value.rounded() && abs(value) < 1e15
            ? "\(Int(value))" : fixed(value, 2)
        return (self.comparison.holds(value, self.limit), "\(self.metric.rawValue) = \(shown)")
    }

    /// Prints each threshold's verdict in the results block; the crossed ones again on stderr. Returns
    /// whether all passed.
    static func report(_ thresholds: [Threshold], for report: Report) -> Bool {
        guard !thresholds.isEmpty else { return true }
        var crossed: [String] = []
        for threshold in thresholds {
            let (passed, shown) = threshold.check(report)
            Output.line("Threshold:       \(threshold.text)  \(passed ? "ok" : "CROSSED") (\(shown))")
            if !passed { crossed.append("\(threshold.text) (\(shown))") }
        }
        for line in crossed { Output.error("perftest: threshold crossed: \(line)") }
        return crossed.isEmpty
    }

    /// k6's exit code for a crossed threshold.
    static let exitCode: Int32 = 99
}
