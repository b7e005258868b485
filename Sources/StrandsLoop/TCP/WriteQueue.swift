import CUV

#if canImport(Glibc)
import Glibc
#endif

/// The bytes a stream accepted but the kernel has not taken yet, in two buffers: `inFlight` is owned by
/// the one `uv_write` under way, `queued` collects what arrives meanwhile. When the write completes the
/// two swap, so a buffer libuv is reading is never reallocated under it.
///
/// Both buffers are freed when the queue drains: an idle connection holds no write memory.
struct WriteQueue {
    // `queued` first: a write checks that it is empty, and that should not reach another cache line.
    var queued = RawBuffer()
    var inFlight = RawBuffer()
    /// The one `uv_write_t`, allocated on the first write that had to wait and kept until close.
    var request: UnsafeMutablePointer<uv_write_t>?

    /// Bytes accepted and not yet written to the socket.
    var pendingBytes: Int { self.inFlight.count + self.queued.count }

    /// Makes the queued bytes the in-flight ones; the empty in-flight buffer (and its capacity) becomes the queue.
    mutating func promoteQueued() {
        swap(&self.inFlight, &self.queued)
    }

    mutating func release() {
        self.inFlight.free()
        self.queued.free()
        self.request?.deallocate()
        self.request = nil
    }
}

