import CUV

/// A layer between a connection's socket and its protocol: TLS (StrandsTLS) is one. While a connection
/// has a filter, what it reads goes to ``filterRead(_:_:)`` instead of its delegate, and what it writes
/// (a cork's flush included) to ``filterWrite(_:_:count:total:)`` instead of the socket; the filter
/// hands its results on with ``TCPConnection/deliverFiltered(_:)`` and
/// ``TCPConnection/submitUnfiltered(_:count:total:)``, which keep backpressure, the cork and the
/// write queue as they are. A connection without one pays a single branch per read and per write.
/// Loop-confined.
package protocol TCPFilter: AnyObject {
    /// Bytes read from the socket, in the loop's read buffer (valid for the call).
    func filterRead(_ connection: TCPConnection, _ bytes: UnsafeMutableRawBufferPointer)
    /// Bytes the protocol writes, in `count` buffers of `total` bytes, lent for the call.
    func filterWrite(_ connection: TCPConnection, _ buffers: UnsafeMutablePointer<uv_buf_t>, count: Int, total: Int) throws(UVError)
    /// The protocol half-closes (its last bytes are out of the cork): what the filter sends to end its
    /// stream goes now, through ``TCPConnection/submitUnfiltered(_:count:total:)``, before the FIN.
    func filterWillShutdown(_ connection: TCPConnection)
    /// The connection is closed: release what the filter holds.
    func filterClosed(_ connection: TCPConnection)
}

extension TCPConnection {
    /// The connection's filter. Kept by the loop, not in the connection, so that the many connections
    /// without one carry no byte for it: a flag bit says there is one.
    package var filter: (any TCPFilter)? {
        get { self.flags.contains(.filtered) ? self.loop.filters[ObjectIdentifier(self)] : nil }
        set {
            if let newValue {
                self.loop.filters[ObjectIdentifier(self)] = newValue
                self.flags.insert(.filtered)
            } else if self.flags.contains(.filtered) {
                self.loop.filters[ObjectIdentifier(self)] = nil
                self.flags.remove(.filtered)
            }
        }
    }

    /// Hands bytes the filter made (plaintext) to the protocol, as a read would, holding the cork.
    package func deliverFiltered(_ bytes: UnsafeMutableRawBufferPointer) {
        guard !self.tcpIsClosing else { return }
        self.deliverRead(bytes)
    }

    /// The filter's stream ended cleanly (a TLS close_notify): as a read of EOF.
    package func deliverFilteredEOF() {
        guard !self.tcpIsClosing, !self.flags.contains(.eof) else { return }
        self.flags.insert(.eof)
        self.updateReading()
        self.events.pointee.didReachEOF(self)
    }
}
