/// An unordered set of connections with O(1) insert and remove: each connection keeps its slot in the
/// list (`registryIndex`), and removal moves the last element into the hole. Loop-confined.
struct SocketList {
    private(set) var sockets: [WebSocket] = []

    var isEmpty: Bool { self.sockets.isEmpty }
    var count: Int { self.sockets.count }

    mutating func insert(_ socket: WebSocket) {
        guard socket.registryIndex < 0 else { return }
        socket.registryIndex = Int32(self.sockets.count)
        self.sockets.append(socket)
    }

    /// Removes `socket`; returns whether it was there.
    @discardableResult
    mutating func remove(_ socket: WebSocket) -> Bool {
        let index = Int(socket.registryIndex)
        guard index >= 0 else { return false }
        let last = self.sockets.removeLast()
        if index < self.sockets.count {
            self.sockets[index] = last
            last.registryIndex = Int32(index)
        }
        socket.registryIndex = -1
        // An emptied list gives its storage back: a loop that once held a burst keeps none of it.
        if self.sockets.isEmpty { self.sockets = [] }
        return true
    }
}

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
