/// Messages sent and not yet answered on one connection, oldest first. Echoes come back in order on one
/// TCP connection, so the head is the one the next reply answers.
///
/// The oldest entry is kept inline: in pingpong it is the only one, and a reply then touches no memory
/// beyond the client's record (with thousands of connections, every extra cache line per message shows).
/// Later entries go to a ring, made on first need, that grows by doubling and never shrinks during a run.
/// 28 bytes, so that a client's whole record stays within 40.
struct InFlight {
    private var headID: UInt64 = 0
    private var headTime: UInt64 = 0
    private var rest: Ring?
    private var _count: UInt32 = 0

    var count: Int { Int(self._count) }
    var isEmpty: Bool { self._count == 0 }

    @inline(__always)
    mutating func push(id: UInt64, at time: UInt64) {
        if self._count == 0 {
            (self.headID, self.headTime) = (id, time)
        } else {
            if self.rest == nil { self.rest = Ring() }
            self.rest.unsafelyUnwrapped.push(id, time)
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
        if self._count > 0 { (self.headID, self.headTime) = self.rest.unsafelyUnwrapped.popFirst() }
    }

    mutating func removeAll() {
        self.rest?.removeAll()
        self._count = 0
    }

    /// A FIFO of (id, time) pairs in one array; a class, so that an idle one costs its owner 8 bytes.
    private final class Ring {
        private var slots: [(UInt64, UInt64)] = []
        private var head = 0
        private var count = 0

        func push(_ id: UInt64, _ time: UInt64) {
            if self.count == self.slots.count { self.grow() }
            self.slots[(self.head + self.count) % self.slots.count] = (id, time)
            self.count += 1
        }

        func popFirst() -> (UInt64, UInt64) {
            let value = self.slots[self.head]
            self.head = (self.head + 1) % self.slots.count
            self.count -= 1
            return value
        }

        func removeAll() {
            self.head = 0
            self.count = 0
        }

        private func grow() {
            let capacity = max(8, self.slots.count * 2)
            var slots = [(UInt64, UInt64)](repeating: (0, 0), count: capacity)
            for i in 0..<self.count { slots[i] = self.slots[(self.head + i) % self.slots.count] }
            self.slots = slots
            self.head = 0
        }
    }
}
