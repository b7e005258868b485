/// The send times of one connection's messages that are not yet answered, oldest first. Echoes come
/// back in order on one TCP connection, so the head is the one the next reply answers.
///
/// Ids are not stored: a client numbers its messages `first, first + n, first + 2n, …` and sends them
/// in that order, and entries leave only from the head, so the messages in flight are always the last
/// `count` it sent (``LoopRun`` derives the head's id from the client's next id).
///
/// The oldest time is kept inline: in pingpong it is the only one, and a reply then touches no memory
/// beyond the client's record (with thousands of connections, every extra cache line per message shows).
/// Later ones go to a ring of manually managed memory, made on first need, that grows by doubling and
/// never shrinks during a run; its start and size are kept inline too, so a push or a pop touches one
/// line of the ring and nothing else. 28 bytes, so that a client's whole record stays within 40. Call
/// ``free()`` when done with it.
struct InFlight {
    private var headTime: UInt64 = 0
    private var ring: UnsafeMutablePointer<UInt64>?
    private var _count: UInt32 = 0
    /// Where the ring's oldest entry is, and its size minus one (a power of two minus one; 0: no ring).
    private var start: UInt32 = 0
    private var mask: UInt32 = 0

    var count: Int { Int(self._count) }
    var isEmpty: Bool { self._count == 0 }

    /// The send time of the oldest message in flight.
    @inline(__always)
    var firstTime: UInt64? { self._count == 0 ? nil : self.headTime }

    @inline(__always)
    mutating func push(at time: UInt64) {
        if self._count == 0 {
            self.headTime = time
        } else {
            let queued = self._count - 1  // In the ring.
            if self.ring == nil || queued > self.mask { self.grow() }
            self.ring.unsafelyUnwrapped[Int((self.start &+ queued) & self.mask)] = time
        }
        self._count += 1
    }

    @inline(__always)
    mutating func removeFirst() {
        precondition(self._count > 0)
        self._count -= 1
        guard self._count > 0, let ring = self.ring else { return }
        self.headTime = ring[Int(self.start)]
        self.start = (self.start &+ 1) & self.mask
    }

    mutating func removeAll() {
        self._count = 0
        self.start = 0
    }

    /// Gives the ring's memory back; the queue is empty afterwards.
    mutating func free() {
        self.ring?.deallocate()
        self.ring = nil
        self._count = 0
        self.start = 0
        self.mask = 0
    }

    @inline(never)
    private mutating func grow() {
        let old = self.ring
        let oldCapacity = old == nil ? 0 : Int(self.mask) + 1
        let capacity = max(8, oldCapacity * 2)
        precondition(capacity <= 1 << 31, "more than 2^31 messages in flight on one connection")
        let ring = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        if let old {
            // Full: the entries run from `start` around to just before it.
            for i in 0..<oldCapacity { ring[i] = old[(Int(self.start) + i) & (oldCapacity - 1)] }
            old.deallocate()
        }
        self.ring = ring
        self.start = 0
        self.mask = UInt32(capacity - 1)
    }
}
