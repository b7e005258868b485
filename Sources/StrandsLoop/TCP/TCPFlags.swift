/// A connection's state bits.
package struct TCPFlags: OptionSet {
    package let rawValue: UInt16
    package init(rawValue: UInt16) { self.rawValue = rawValue }
    package static let wantsRead = TCPFlags(rawValue: 1 << 0)
    package static let reading = TCPFlags(rawValue: 1 << 1)
    package static let backpressured = TCPFlags(rawValue: 1 << 2)
    package static let eof = TCPFlags(rawValue: 1 << 3)
    package static let closing = TCPFlags(rawValue: 1 << 4)
    package static let closed = TCPFlags(rawValue: 1 << 5)
    package static let shutdownRequested = TCPFlags(rawValue: 1 << 6)
    package static let writing = TCPFlags(rawValue: 1 << 7)
    /// A ``TCPFilter`` sits under the protocol; the loop keeps it (``Loop/filters``).
    package static let filtered = TCPFlags(rawValue: 1 << 8)
}
