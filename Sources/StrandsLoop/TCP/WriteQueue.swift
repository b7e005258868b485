import CUV

/// The bytes a connection accepted but the kernel has not taken yet, in two buffers: `inFlight` is owned
/// by the one `uv_write` under way, `queued` collects what arrives meanwhile. When the write completes
/// the two swap, so a buffer libuv is reading is never reallocated under it.
///
/// A side allocation that exists only while bytes wait (or a close error must be kept until the close
/// callback): an idle connection holds neither the buffers nor this object. Loop-confined.
final class WriteQueue {
    var queued = RawBuffer()
    var inFlight = RawBuffer()
    /// The one `uv_write_t`, allocated with the queue.
    var request: UnsafeMutablePointer<uv_write_t>?
    /// Why the connection is closing, kept for its close callback.
    var closeError: UVError?

    /// Bytes accepted and not yet written to the socket.
    var pendingBytes: Int { self.inFlight.count + self.queued.count }

    /// Makes the queued bytes the in-flight ones; the empty in-flight buffer (and its capacity) becomes the queue.
    func promoteQueued() {
        swap(&self.inFlight, &self.queued)
    }

    deinit {
        self.inFlight.free()
        self.queued.free()
        self.request?.deallocate()
    }
}

@available(*, unavailable)
extension WriteQueue: Sendable {}
