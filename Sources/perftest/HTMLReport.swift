import Foundation
import Histogram

/// `-report FILE.html`: one self-contained page (inline SVG, no script needed to draw, nothing fetched)
/// with the latency percentile curve (HDR style: the percentile axis is log-scaled in 1 / (1 − p)),
/// throughput and p50/p99 second by second, errors second by second, and the run's settings.
enum HTMLReport {
    static func render(_ report: Report) -> String {
        var body = ""
        body += "<h1>perftest: \(escape(report.mode)) against \(escape(report.target))</h1>\n"
        body += Self.summary(report)
        var charts: [String] = []
        if let percentiles = Self.percentileChart(report) { charts.append(percentiles) }
        if let series = report.series, !series.isEmpty {
            let rates: [(String, String, [(Double, Double)])] = [
                ("received/s", "#1f77b4", series.map { ($0.t, Double($0.received) / max($0.seconds, 1e-9)) }),
                ("sent/s", "#ff7f0e", series.map { ($0.t, Double($0.sent) / max($0.seconds, 1e-9)) }),
            ]
            charts.append(Self.chart(id: "throughput", title: "Throughput, second by second", xLabel: "seconds into the run",
                                     yLabel: "messages per second", lines: rates, minimumTop: 1))
            let latencies: [(String, String, [(Double, Double)])] = [
                ("p99", "#d62728", series.compactMap { s in s.p99Ms.map { (s.t, $0) } }),
                ("p50", "#2ca02c", series.compactMap { s in s.p50Ms.map { (s.t, $0) } }),
            ]
            charts.append(Self.chart(id: "latency-over-time", title: "Latency p50 and p99, second by second",
                                     xLabel: "seconds into the run", yLabel: "milliseconds", lines: latencies))
            charts.append(Self.chart(id: "errors", title: "Errors, second by second", xLabel: "seconds into the run",
                                     yLabel: "errors per second",
                                     lines: [("errors/s", "#9467bd", series.map { ($0.t, Double($0.errors) / max($0.seconds, 1e-9)) })],
                                     minimumTop: 1))
        }
        body += charts.joined(separator: "\n")
        body += Self.settings(report)
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>perftest report</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1000px; }
            h1 { font-size: 20px; } h2 { font-size: 16px; margin: 28px 0 6px; }
            table { border-collapse: collapse; } td, th { padding: 2px 12px 2px 0; text-align: left; vertical-align: top; }
            th { font-weight: 600; color: #555; } .figures td:first-child { color: #555; }
            svg text { font: 11px system-ui, sans-serif; fill: #444; } .legend { font-size: 12px; }
            .crossed { color: #b00; }
            </style></head>
            <body>
            \(body)
            <script>
            // Not needed to draw: it records what was laid out, for tests that render the page.
            document.body.dataset.drawn = JSON.stringify(Array.from(document.querySelectorAll('svg.chart')).map(function (svg) {
              return { id: svg.id, lines: Array.from(svg.querySelectorAll('path.line')).map(function (p) { return p.getTotalLength(); }) };
            }));
            </script>
            </body></html>

            """
    }

    // MARK: Parts

    private static func summary(_ r: Report) -> String {
        let s = r.stats
        var rows: [(String, String)] = [
            ("Connected", "\(s.connected) of \(s.requested)"),
            ("Sent", "\(s.sent) (\(Int(r.sentPerSecond.rounded())) msg/s)"),
            ("Received", "\(s.received) (\(Int(r.receivedPerSecond.rounded())) msg/s)"),
            ("Lost", "\(s.lost) (\(fixed(r.lossPercent, 2)) %)"),
            ("Errors", "\(s.errors)"),
        ]
        if let rate = r.rate {
            rows.append(("Rate", "asked \(Int(rate.rounded())) msg/s, backlog at end \(s.backlogAtEnd) (largest \(s.maxBacklog))"))
        }
        if let l = r.latency {
            rows.append(("Latency", "p50 \(fixed(l.p50Ms, 3)) ms, p90 \(fixed(l.p90Ms, 3)), p99 \(fixed(l.p99Ms, 3)), "
                + "p99.9 \(fixed(l.p999Ms, 3)), max \(fixed(l.maxMs, 3)) ms (\(l.samples) samples)"))
        }
        if let l = r.serviceTime {
            rows.append(("Service time", "p50 \(fixed(l.p50Ms, 3)) ms, p99 \(fixed(l.p99Ms, 3)), max \(fixed(l.maxMs, 3)) ms"))
        }
        if let cpu = r.cpuSecondsPer1000 { rows.append(("perftest CPU", "\(cpuMilliseconds(cpu)) ms per 1,000")) }
        if let error = r.firstError { rows.append(("First error", error)) }
        return "<table class=\"figures\">" + rows.map { "<tr><td>\(escape($0.0))</td><td>\(escape($0.1))</td></tr>" }.joined() + "</table>\n"
    }

    private static func settings(_ r: Report) -> String {
        var rows: [(String, String)] = [
            ("Target", r.target), ("Mode", r.mode), ("Clients", "\(r.clients)"), ("Duration", "\(fixed(r.durationSeconds, 1)) s"),
            ("Payload", "\(r.payloadBytes) bytes (\(r.data))"), ("Compression", r.compression),
        ]
        if let command = r.command { rows.append(("Command", command.joined(separator: " "))) }
        if let m = r.machine { rows.append(("Machine", "\(m.host): \(m.cores) CPUs, Linux \(m.kernel)")) }
        for source in r.mergedFrom ?? [] {
            rows.append(("Merged from", "\(source.file)" + (source.machine.map { " (\($0.host))" } ?? "")))
        }
        return "<h2>Settings</h2><table>" + rows.map { "<tr><th>\(escape($0.0))</th><td>\(escape($0.1))</td></tr>" }.joined()
            + "</table>\n"
    }

    /// The latency by percentile, HdrHistogram's plot: x is log10(1 / (1 − p)), so 90 %, 99 %, 99.9 %…
    /// are evenly spaced, up to the last percentile the samples can tell.
    private static func percentileChart(_ r: Report) -> String? {
        func curve(_ encoded: String?) -> [(Double, Double)]? {
            guard let encoded, let histogram = try? HistogramCodec.decode(encoded), histogram.totalCount > 0 else { return nil }
            let limit = min(6, log10(Double(histogram.totalCount)))
            var points: [(Double, Double)] = []
            var x = 0.0
            while x <= limit + 1e-9 {
                let percentile = 100 * (1 - pow(10, -x))
                points.append((x, Double(histogram.valueAtPercentile(percentile)) / 1e6))
                x += 0.05
            }
            points.append((limit, Double(histogram.valueAtPercentile(100)) / 1e6))
            return points
        }
        guard let latency = curve(r.histogram) else { return nil }
        var lines: [(String, String, [(Double, Double)])] = [(r.rate == nil ? "latency" : "latency (from intended send)", "#1f77b4", latency)]
        if let service = curve(r.serviceHistogram) { lines.append(("service time", "#ff7f0e", service)) }
        let ticks = (0...6).map { (Double($0), ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"][$0]) }
        return Self.chart(id: "percentiles", title: "Latency by percentile", xLabel: "percentile", yLabel: "milliseconds",
                          lines: lines, xTicks: ticks.filter { $0.0 <= (latency.last?.0 ?? 0) + 1e-9 })
    }

    // MARK: Drawing

    /// A line chart in SVG: each line a path over shared axes, y from 0.
    private static func chart(id: String, title: String, xLabel: String, yLabel: String,
                              lines: [(String, String, [(Double, Double)])], xTicks: [(Double, String)]? = nil,
                              minimumTop: Double = 1e-9) -> String {
        let width = 900.0, height = 300.0, left = 70.0, right = 40.0, top = 20.0, bottom = 45.0
        let points = lines.flatMap(\.2)
        let xMin = points.map(\.0).min() ?? 0, xMaxRaw = points.map(\.0).max() ?? 1
        let xMax = xMaxRaw > xMin ? xMaxRaw : xMin + 1
        let yTicks = Self.niceTicks(upTo: max(points.map(\.1).max() ?? 1, minimumTop))
        let yMax = yTicks.last ?? 1
        func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * (width - left - right) }
        func py(_ y: Double) -> Double { height - bottom - y / yMax * (height - top - bottom) }
        var svg = "<h2>\(escape(title))</h2>\n<svg class=\"chart\" id=\"\(id)\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">\n"
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(width - left - right))\" height=\"\(f(height - top - bottom))\" fill=\"#fafafa\" stroke=\"#ccc\"/>\n"
        for tick in yTicks {
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(width - right))\" y1=\"\(f(py(tick)))\" y2=\"\(f(py(tick)))\" stroke=\"#e4e4e4\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(tick) + 4))\" text-anchor=\"end\">\(escape(Self.label(tick)))</text>\n"
        }
        let xs = xTicks ?? Self.niceTicks(upTo: xMax).map { ($0, Self.label($0)) }
        for (x, text) in xs where x >= xMin - 1e-9 && x <= xMax + 1e-9 {
            svg += "<line x1=\"\(f(px(x)))\" x2=\"\(f(px(x)))\" y1=\"\(f(top))\" y2=\"\(f(height - bottom))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(f(px(x)))\" y=\"\(f(height - bottom + 16))\" text-anchor=\"middle\">\(escape(text))</text>\n"
        }
        svg += "<text x=\"\(f((left + width - right) / 2))\" y=\"\(f(height - 6))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg += "<text transform=\"translate(14 \(f((top + height - bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (index, (name, color, line)) in lines.enumerated() where !line.isEmpty {
            let path = line.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(f(px($0.element.0))) \(f(py($0.element.1)))" }.joined(separator: " ")
            svg += "<path class=\"line\" d=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            let y = top + 14 + Double(index) * 16
            svg += "<line x1=\"\(f(left + 12))\" x2=\"\(f(left + 32))\" y1=\"\(f(y - 4))\" y2=\"\(f(y - 4))\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            svg += "<text class=\"legend\" x=\"\(f(left + 38))\" y=\"\(f(y))\">\(escape(name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// 0 and a handful of round steps (1, 2 or 5 × 10ⁿ) reaching `value`.
    static func niceTicks(upTo value: Double) -> [Double] {
        let raw = value / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var ticks = [0.0]
        while ticks.last! < value - 1e-12 { ticks.append(ticks.last! + step) }
        return ticks
    }

    private static func label(_ value: Double) -> String {
        if value == 0 { return "0" }
        if abs(value) >= 1_000_000 { return fixed(value / 1_000_000, value.truncatingRemainder(dividingBy: 1_000_000) == 0 ? 0 : 1) + "M" }
        if abs(value) >= 10_000 { return fixed(value / 1000, value.truncatingRemainder(dividingBy: 1000) == 0 ? 0 : 1) + "k" }
        if value == value.rounded() { return "\(Int(value))" }
        var text = fixed(value, abs(value) < 0.01 ? 4 : abs(value) < 1 ? 3 : 2)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    private static func f(_ value: Double) -> String { fixed(value, 1) }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    static func write(_ report: Report, to path: String) throws {
        try Data(Self.render(report).utf8).write(to: URL(fileURLWithPath: path))
    }
}
