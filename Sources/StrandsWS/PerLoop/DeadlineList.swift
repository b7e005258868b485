/// The connections with a deadline (in the handshake, or closing) and when each passes, in loop
/// milliseconds; the slot is kept in the connection's side state. Usually few. Loop-confined.
struct DeadlineList {
    private(set) var entries: [(socket: WebSocket, deadline: UInt64)] = []

    var isEmpty: Bool { self.entries.isEmpty }

    /// Sets or replaces `socket`'s deadline.
    mutating func set(_ socket: WebSocket, _ cold: ColdState, deadline: UInt64) {
        if cold.timedIndex >= 0 {
            self.entries[cold.timedIndex].deadline = deadline
            return
        }
        cold.timedIndex = self.entries.count
        self.entries.append((socket, deadline))
    }

    @discardableResult
    mutating func remove(_ cold: ColdState) -> Bool {
        let index = cold.timedIndex
        guard index >= 0 else { return false }
        let last = self.entries.removeLast()
        if index < self.entries.count {
            self.entries[index] = last
            last.socket.cold!.timedIndex = index
        }
        cold.timedIndex = -1
        return true
    }
}
