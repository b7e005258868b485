/// An unordered set of connections with O(1) insert and remove: each connection keeps its slot in the
/// list (`slot` names which of its fields), and removal moves the last element into the hole.
/// Used for the open connections of a loop and for those with a deadline. Loop-confined.
struct SocketList {
    private(set) var sockets: [WebSocket] = []
    private let slot: ReferenceWritableKeyPath<WebSocket, Int>

    init(slot: ReferenceWritableKeyPath<WebSocket, Int>) { self.slot = slot }

    var isEmpty: Bool { self.sockets.isEmpty }

    func contains(_ socket: WebSocket) -> Bool { socket[keyPath: self.slot] >= 0 }

    mutating func insert(_ socket: WebSocket) {
        guard !self.contains(socket) else { return }
        socket[keyPath: self.slot] = self.sockets.count
        self.sockets.append(socket)
    }

    /// Removes `socket`; returns whether it was there.
    @discardableResult
    mutating func remove(_ socket: WebSocket) -> Bool {
        let index = socket[keyPath: self.slot]
        guard index >= 0 else { return false }
        let last = self.sockets.removeLast()
        if index < self.sockets.count {
            self.sockets[index] = last
            last[keyPath: self.slot] = index
        }
        socket[keyPath: self.slot] = -1
        return true
    }
}
