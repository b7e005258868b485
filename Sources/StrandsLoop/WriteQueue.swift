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
    var inFlight = ByteBuffer()
    var queued = ByteBuffer()
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

/// A growable run of bytes in one malloc'd block. Not copy-on-write: owned by exactly one `WriteQueue`.
struct ByteBuffer {
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var count = 0
    private(set) var capacity = 0

    var isEmpty: Bool { self.count == 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        self.reserve(self.count + bytes.count)
        // Safe: reserve made room for count + bytes.count.
        (self.base! + self.count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        self.count += bytes.count
    }

    mutating func reserve(_ needed: Int) {
        guard needed > self.capacity else { return }
        let newCapacity = max(needed, self.capacity * 2, 4096)
        self.base = realloc(self.base, newCapacity)
        precondition(self.base != nil, "out of memory growing a write buffer to \(newCapacity) bytes")
        self.capacity = newCapacity
    }

    mutating func removeAll() { self.count = 0 }

    mutating func free() {
        Glibc.free(self.base)
        self.base = nil
        self.count = 0
        self.capacity = 0
    }
}
