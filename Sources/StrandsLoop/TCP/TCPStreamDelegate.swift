/// What a ``TCPStream`` tells its owner. Called on the stream's loop.
///
/// One delegate object usually serves one connection (a WebSocket connection is its stream's delegate);
/// the stream holds it strongly until the close callback, then lets it go.
public protocol TCPStreamDelegate: AnyObject {
    /// Bytes arrived. `bytes` is the loop's shared read buffer: valid only during this call, never to be
    /// kept, but the delegate may change it in place (a WebSocket unmasks there). Copy what must outlive it.
    func stream(_ stream: TCPStream, didRead bytes: UnsafeMutableRawBufferPointer)

    /// The peer half-closed its side (read returned EOF). The default closes the stream.
    func streamDidReachEOF(_ stream: TCPStream)

    /// Every byte handed to `write` has reached the kernel. The default does nothing.
    func streamDidDrain(_ stream: TCPStream)

    /// The stream is closed and its handle freed; `error` is why, or `nil` for a local ``TCPStream/close()``.
    /// The default does nothing.
    func stream(_ stream: TCPStream, didCloseWith error: UVError?)
}

extension TCPStreamDelegate {
    public func streamDidReachEOF(_ stream: TCPStream) { stream.close() }
    public func streamDidDrain(_ stream: TCPStream) {}
    public func stream(_ stream: TCPStream, didCloseWith error: UVError?) {}
}
