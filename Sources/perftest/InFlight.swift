/// Messages sent and not yet answered on one connection, oldest first: a ring of (id, send time).
/// Echoes come back in order on one TCP connection, so the head is the one the next reply answers.
/// Grows by doubling and never shrinks during a run: no allocation per message in steady state.
struct InFlight {
    private var ids: [UInt64] = []
    private var times: [UInt64] = []
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { self.count == 0 }

    mutating func push(id: UInt64, at time: UInt64) {
        if self.count == self.ids.count { self.grow() }
        let slot = (self.head + self.count) % self.ids.count
        self.ids[slot] = id
        self.times[slot] = time
        self.count += 1
    }

    /// The oldest entry.
    var first: (id: UInt64, time: UInt64)? {
        self.count == 0 ? nil : (self.ids[self.head], self.times[self.head])
    }

    mutating func removeFirst() {
        precondition(self.count > 0)
        self.head = (self.head + 1) % self.ids.count
        self.count -= 1
    }

    mutating func removeAll() {
        self.head = 0
        self.count = 0
    }

    private mutating func grow() {
        let capacity = max(8, self.ids.count * 2)
        var ids = [UInt64](repeating: 0, count: capacity)
        var times = [UInt64](repeating: 0, count: capacity)
        for i in 0..<self.count {
            ids[i] = self.ids[(self.head + i) % self.ids.count]
            times[i] = self.times[(self.head + i) % self.times.count]
        }
        self.ids = ids
        self.times = times
        self.head = 0
    }
}
