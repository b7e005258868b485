/// One loop's subscribers, by topic id: for each topic an array of its subscribers on this loop, and
/// on each connection the list of its subscriptions with its place in each array, so that subscribing,
/// unsubscribing and a connection's close cost O(its subscriptions), never a search of a topic's
/// members. Loop-confined; owned by the server's registry for this loop.
final class LoopTopics {
    let table: TopicTable
    /// This loop's bit in every topic's loop mask.
    let loopBit: UInt64
    let loopIndex: Int
    private var members: [[Unmanaged<WebSocket>]] = []

    init(table: TopicTable, loopIndex: Int) {
        self.table = table
        self.loopBit = TopicTable.bit(ofLoop: loopIndex)
        self.loopIndex = loopIndex
    }

    /// Adds `socket` to `topic`; false if it was subscribed already or the topic is another server's.
    func subscribe(_ socket: WebSocket, to topic: Topic) -> Bool {
        guard topic.table === self.table else { return false }
        let cold = socket.coldState
        if cold.subscriptions.contains(where: { $0.topic === topic }) { return false }
        if self.members.count <= topic.id { self.members.append(contentsOf: repeatElement([], count: topic.id + 1 - self.members.count)) }
        cold.subscriptions.append((topic, self.members[topic.id].count))
        self.members[topic.id].append(Unmanaged.passUnretained(socket))
        if self.members[topic.id].count == 1 { topic.loopMask.bitwiseOr(self.loopBit, ordering: .releasing) }
        topic.subscribed(1)
        return true
    }

    /// Removes `socket` from `topic`; false if it was not subscribed.
    func unsubscribe(_ socket: WebSocket, from topic: Topic) -> Bool {
        guard let cold = socket.cold, let slot = cold.subscriptions.firstIndex(where: { $0.topic === topic }) else { return false }
        let index = cold.subscriptions[slot].index
        cold.subscriptions.remove(at: slot)
        self.remove(at: index, of: topic)
        return true
    }

    /// Every subscription of a connection that closes (its cold state, which held them, is gone).
    func dropAll(_ subscriptions: [(topic: Topic, index: Int)]) {
        for subscription in subscriptions { self.remove(at: subscription.index, of: subscription.topic) }
    }

    private func remove(at index: Int, of topic: Topic) {
        let last = self.members[topic.id].count - 1
        if index != last {
            let moved = self.members[topic.id][last]
            self.members[topic.id][index] = moved
            moved._withUnsafeGuaranteedRef { socket in
                if let cold = socket.cold, let slot = cold.subscriptions.firstIndex(where: { $0.topic === topic }) {
                    cold.subscriptions[slot].index = index
                }
            }
        }
        self.members[topic.id].removeLast()
        // Loops from the 64th on share the top bit: it stays set once one of them had a subscriber.
        if last == 0 && self.loopIndex < 63 { topic.loopMask.bitwiseAnd(~self.loopBit, ordering: .releasing) }
        topic.subscribed(-1)
    }

    /// Writes `message` to every subscriber of `topic` on this loop.
    func deliver(_ message: TopicMessage, to topic: Topic) {
        guard topic.id < self.members.count else { return }
        var delivered = 0
        var dropped = 0
        message.frame.withUnsafeBytes { frame in
            // A subscriber that fails (over its cap, with the close policy) leaves the list only when
            // its transport closes, later: the array does not change under this loop.
            for member in self.members[topic.id] {
                let accepted = member._withUnsafeGuaranteedRef { $0.writePreframed(frame).isAccepted }
                if accepted { delivered += 1 } else { dropped += 1 }
            }
        }
        topic.countDeliveries(delivered, dropped: dropped)
    }
}

@available(*, unavailable)
extension LoopTopics: Sendable {}
