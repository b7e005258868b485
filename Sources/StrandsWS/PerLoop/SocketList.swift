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
