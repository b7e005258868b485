/// Where a ``TCPConnection`` sends its events: one table of functions per kind of connection, made once
/// per process, that each connection points at.
///
/// libuv's way (a callback per event, the object behind a `void *`) rather than a delegate: the table
/// costs 8 bytes per connection where an existential delegate costs 16, and a call through it reaches
/// the subclass's own final methods with no witness lookup and no retain of a delegate.
package struct TCPConnectionEvents {
    /// Bytes arrived in the loop's read buffer (valid only during the call, changeable in place).
    package let didRead: (TCPConnection, UnsafeMutableRawBufferPointer) -> Void
    /// The peer half-closed its side.
    package let didReachEOF: (TCPConnection) -> Void
    /// Every byte written so far has reached the kernel.
    package let didDrain: (TCPConnection) -> Void
    /// The handle is closed; the error, if any, is why.
    package let didClose: (TCPConnection, UVError?) -> Void

    /// A table that lives as long as the process, for a `static let` of the kind of connection.
    package static func make(
        didRead: @escaping (TCPConnection, UnsafeMutableRawBufferPointer) -> Void,
        didReachEOF: @escaping (TCPConnection) -> Void,
        didDrain: @escaping (TCPConnection) -> Void,
        didClose: @escaping (TCPConnection, UVError?) -> Void
    ) -> UnsafePointer<TCPConnectionEvents> {
        let table = UnsafeMutablePointer<TCPConnectionEvents>.allocate(capacity: 1)
        table.initialize(to: TCPConnectionEvents(didRead: didRead, didReachEOF: didReachEOF, didDrain: didDrain,
                                                 didClose: didClose))
        return UnsafePointer(table)
    }
}
