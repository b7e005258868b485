/// Prometheus' text exposition format (version 0.0.4), written at scrape time from counters the
/// servers already keep: nothing on the per-message path, no metrics library between a message and
/// its counter.
///
/// Each family gets its `# HELP` and `# TYPE` lines once, before its first sample; samples of one
/// family must be added together (the format wants a family's samples contiguous).
public struct PrometheusText: Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge
    }

    /// The content type scrapers expect for this format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public private(set) var text = ""
    private var families: [String] = []

    public init() {}

    /// One sample of family `name`; the first sample of a family writes its HELP and TYPE lines.
    /// `name` and label names must match `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names without colons);
    /// label values are escaped as the format says (backslash, double quote, newline).
    public mutating func add(_ name: String, _ kind: Kind, help: String, value: Int, labels: [(String, String)] = []) {
        precondition(Self.isValidName(name, colons: true), "bad metric name \(name)")
        if self.families.last != name {
            precondition(!self.families.contains(name), "samples of \(name) must be contiguous")
            self.families.append(name)
            self.text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
        }
        self.text += name
        if !labels.isEmpty {
            self.text += "{"
            for (index, (label, labelValue)) in labels.enumerated() {
                precondition(Self.isValidName(label, colons: false), "bad label name \(label)")
                if index > 0 { self.text += "," }
                self.text += "\(label)=\"\(Self.escapeLabel(labelValue))\""
            }
            self.text += "}"
        }
        self.text += " \(value)\n"
    }

    package static func isValidName(_ name: String, colons: Bool) -> Bool {
        guard let first = name.utf8.first, !(first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
                || (colons && byte == UInt8(ascii: ":"))
        }
    }

    /// HELP text escapes backslash and newline.
    static func escapeHelp(_ text: String) -> String {
        text.replacing("\\", with: "\\\\").replacing("\n", with: "\\n")
    }

    /// Label values escape backslash, double quote and newline.
    static func escapeLabel(_ text: String) -> String {
        text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n")
    }
}
