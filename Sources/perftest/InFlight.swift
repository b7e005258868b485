/// Messages sent and not yet answered on one connection, oldest first. Echoes come back in order on one
/// TCP connection, so the head is the one the next reply answers.
///
/// The oldest entry is kept inline: in pingpong it is the only one, and a reply then touches no memory
/// beyond the client's record (with thousands of connections, every extra cache line per message shows).
/// Later entries go to a ring of manually managed memory, made on first need, that grows by doubling and
/// never shrinks during a run: no reference counting and no exclusivity checks per message. 28 bytes,
/// so that a client's whole record stays within 40. Call ``free()`` when done with it.
struct InFlight {
    private var headID: UInt64 = 0
    private var headTime: UInt64 = 0
    /// `[capacity, start]` as two `Int`s, then `capacity` (id, time) pairs; capacity is a power of two.
    private var ring: UnsafeMutableRawPointer?
    private var _count: UInt32 = 0

    var count: Int { Int(self._count) }
    var isEmpty: Bool { self._count == 0 }

    private static let headerSize = 16
    private static let entrySize = 16

    @inline(__always)
    mutating func push(id: UInt64, at time: UInt64) {
        if self._count == 0 {
            (self.headID, self.headTime) = (id, time)
        } else {
            let queued = Int(self._count) - 1  // In the ring.
            if self.ring == nil || queued == self.ring!.load(as: Int.self) { self.grow() }
            let ring = self.ring!
            let capacity = ring.load(as: Int.self)
            let start = ring.load(fromByteOffset: 8, as: Int.self)
            let slot = ring + Self.headerSize + ((start + queued) & (capacity - 1)) * Self.entrySize
            slot.storeBytes(of: id, as: UInt64.self)
            slot.storeBytes(of: time, toByteOffset: 8, as: UInt64.self)
        }
        self._count += 1
    }

    /// The oldest entry.
    @inline(__always)
    var first: (id: UInt64, time: UInt64)? { self._count == 0 ? nil : (self.headID, self.headTime) }

    @inline(__always)
    mutating func removeFirst() {
        precondition(self._count > 0)
        self._count -= 1
        guard self._count > 0, let ring = self.ring else { return }
        let capacity = ring.load(as: Int.self)
        let start = ring.load(fromByteOffset: 8, as: Int.self)
        let slot = ring + Self.headerSize + start * Self.entrySize
        self.headID = slot.load(as: UInt64.self)
        self.headTime = slot.load(fromByteOffset: 8, as: UInt64.self)
        ring.storeBytes(of: (start + 1) & (capacity - 1), toByteOffset: 8, as: Int.self)
    }

    mutating func removeAll() {
        self._count = 0
        self.ring?.storeBytes(of: 0, toByteOffset: 8, as: Int.self)
    }

    /// Gives the ring's memory back; the queue is empty afterwards.
    mutating func free() {
        self.ring?.deallocate()
        self.ring = nil
        self._count = 0
    }

    private mutating func grow() {
        let old = self.ring
        let oldCapacity = old?.load(as: Int.self) ?? 0
        let capacity = max(8, oldCapacity * 2)
        let ring = UnsafeMutableRawPointer.allocate(byteCount: Self.headerSize + capacity * Self.entrySize, alignment: 8)
        ring.storeBytes(of: capacity, as: Int.self)
        ring.storeBytes(of: 0, toByteOffset: 8, as: Int.self)
        if let old {
            // Full: the entries run from `start` around to just before it.
            let start = old.load(fromByteOffset: 8, as: Int.self)
            for i in 0..<oldCapacity {
                let from = old + Self.headerSize + ((start + i) & (oldCapacity - 1)) * Self.entrySize
                (ring + Self.headerSize + i * Self.entrySize).copyMemory(from: from, byteCount: Self.entrySize)
            }
            old.deallocate()
        }
        self.ring = ring
    }
}
