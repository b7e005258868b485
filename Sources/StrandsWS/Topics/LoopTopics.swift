/// One loop's subscribers, by topic id: for each topic an array of its subscribers on this loop, and
/// on each connection the list of its subscriptions with its place in each array, so that subscribing,
/// unsubscribing and a connection's close cost O(its subscriptions), never a search of a topic's
/// members. Loop-confined; owned by the server's registry for this loop.
///
/// Delivery is once per loop turn: messages published on this loop during its reads, and those other
/// threads pushed to its ``TopicInbox``, wait in `pending` until the loop's I/O callbacks are done
/// (a `uv_check`), and each run of messages for one topic then reaches each subscriber in one write.
final class LoopTopics {
    let table: TopicTable
    /// This loop's bit in every topic's loop mask.
    let loopBit: UInt64
    let loopIndex: Int
    let loop: Loop
    let inbox: TopicInbox
    private var members: [[Unmanaged<WebSocket>]] = []
    /// Messages waiting for this turn's flush, in publishing order.
    private var pending: [TopicMessage] = []
    /// Made on first use, so a server without topics adds nothing to a loop's turn.
    private var flushCheck: LoopCheck?
    private var flushing = false

    /// On the loop's thread.
    init(table: TopicTable, inbox: TopicInbox) {
        self.table = table
        self.loopBit = TopicTable.bit(ofLoop: inbox.index)
        self.loopIndex = inbox.index
        self.loop = inbox.loop
        self.inbox = inbox
        self.loop.addWakeHandler { [weak self] in self?.takeInbox() }
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
        if socket.extensionBits & DeflateBits.rsv1 != 0 { topic.deflateSubscribers.add(1, ordering: .relaxed) }
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
        // The extension bits stay on the connection after its cold state is gone.
        if self.members[topic.id][index]._withUnsafeGuaranteedRef({ $0.extensionBits & DeflateBits.rsv1 != 0 }) {
            topic.deflateSubscribers.subtract(1, ordering: .relaxed)
        }
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

    /// Queues a message published on this loop. Inside a read (the cork is held) it waits for the
    /// turn's flush, with whatever else the reads publish; anywhere else (a timer, a task) it goes now,
    /// as no flush may come before the loop next blocks.
    func enqueue(_ message: TopicMessage) {
        self.pending.append(message)
        if self.loop.cork.pointee.owner != nil { self.scheduleFlush() } else { self.flush() }
    }

    private func takeInbox() {
        let before = self.pending.count
        self.inbox.takeAll(into: &self.pending)
        if self.pending.count > before { self.scheduleFlush() }
    }

    private func scheduleFlush() {
        guard self.flushCheck == nil, !self.loop.isShuttingDown else { return }
        self.flushCheck = self.loop.afterEachPoll { [unowned self] in self.flush() }
    }

    /// Delivers what is pending: each run of consecutive messages for one topic reaches each of its
    /// subscribers here in one write (publishing order is kept, across topics too).
    func flush() {
        // A publish made while this runs (nothing in a write calls back into a handler today) joins the
        // list and goes out in this same pass.
        guard !self.pending.isEmpty, !self.flushing else { return }
        self.flushing = true
        var start = 0
        while start < self.pending.count {
            let topic = self.pending[start].topic
            var end = start + 1
            while end < self.pending.count && self.pending[end].topic === topic { end += 1 }
            self.deliver(start..<end, to: topic)
            start = end
        }
        // Keep the array for the next turn unless a burst made it large.
        self.pending.removeAll(keepingCapacity: self.pending.capacity <= 4096)
        self.flushing = false
    }

    private func deliver(_ run: Range<Int>, to topic: Topic) {
        guard topic.id < self.members.count, !self.members[topic.id].isEmpty else { return }
        var delivered = 0
        var dropped = 0
        // A subscriber that fails (over its cap, with the close policy) leaves the list only when its
        // transport closes, later: the array does not change under this loop.
        let members = self.members[topic.id]
        if run.count == 1 {
            let message = self.pending[run.lowerBound]
            for member in members {
                let accepted = member._withUnsafeGuaranteedRef { $0.writePreframed(message.frame(for: $0)).isAccepted }
                if accepted { delivered += 1 } else { dropped += 1 }
            }
        } else {
            for member in members {
                member._withUnsafeGuaranteedRef { socket in
                    socket.withCork {
                        for index in run {
                            if socket.writePreframed(self.pending[index].frame(for: socket)).isAccepted { delivered += 1 } else { dropped += 1 }
                        }
                    }
                }
            }
        }
        topic.countDeliveries(delivered, dropped: dropped)
    }
}

@available(*, unavailable)
extension LoopTopics: Sendable {}
