import Synchronization

/// A named channel that connections subscribe to and messages are published on; interned by the
/// server (``WebSocketServer/topic(_:)``), so publishing through a handle hashes no string.
///
/// Which loops have subscribers is one atomic word (a bit per loop, set on a loop's first subscriber,
/// cleared on its last): a publish reads it once and reaches only those loops.
///
/// A topic lives while something holds it: a subscription, or a handle the application keeps. The table
/// holds it weakly, so rooms that peers name and leave do not pile up; its id goes back to the table
/// for the next new topic.
public final class Topic: Sendable, CustomStringConvertible {
    /// Dense per server, from 0, reused once the topic is gone: each loop keeps its subscribers in an
    /// array at this index.
    let id: Int
    public let name: String
    /// The server's table that made it (a handle is only good on that server's connections).
    let table: TopicTable
    let loopMask = Atomic<UInt64>(0)
    private let subscriberCount = Atomic<Int>(0)
    private let publishedCount = Atomic<Int>(0)
    private let deliveredCount = Atomic<Int>(0)
    private let droppedCount = Atomic<Int>(0)
    /// Subscribers that agreed permessage-deflate: while there are any, a publish is deflated once.
    let deflateSubscribers = Atomic<Int>(0)

    init(id: Int, name: String, table: TopicTable) {
        self.id = id
        self.name = name
        self.table = table
    }

    deinit { self.table.gone(self) }

    public var description: String { self.name }

    /// Counts, for metrics: subscribers now, messages published, deliveries made, deliveries refused
    /// (a subscriber over its send cap, or closing).
    public var statistics: TopicStatistics {
        TopicStatistics(subscribers: self.subscriberCount.load(ordering: .relaxed),
                        published: self.publishedCount.load(ordering: .relaxed),
                        delivered: self.deliveredCount.load(ordering: .relaxed),
                        dropped: self.droppedCount.load(ordering: .relaxed))
    }

    func subscribed(_ delta: Int) {
        let now = self.subscriberCount.add(delta, ordering: .relaxed).newValue
        // Its first subscriber in the process, or its last gone: the Redis bridge (un)subscribes.
        if now == 0 || now == delta { self.table.subscribersChanged(self) }
    }
    func countPublished() { self.publishedCount.add(1, ordering: .relaxed) }
    func countDeliveries(_ delivered: Int, dropped: Int) {
        if delivered > 0 { self.deliveredCount.add(delivered, ordering: .relaxed) }
        if dropped > 0 { self.droppedCount.add(dropped, ordering: .relaxed) }
    }
}

public struct TopicStatistics: Sendable, Equatable {
    public var subscribers: Int
    public var published: Int
    public var delivered: Int
    public var dropped: Int
}

/// A server's topics by name, held weakly. Locked, but only to intern a name (at subscribe time, or
/// when a caller looks a handle up) and when a topic goes; a publish through a handle never touches it.
final class TopicTable: Sendable {
    private struct Entry {
        weak var topic: Topic?
    }
    private struct State {
        var byName: [String: Entry] = [:]
        var freeIDs: [Int] = []
        var nextID = 0
    }
    private let state = Mutex(State())
    /// Loops beyond 64 share the top bit of a topic's loop mask (they are then always reached).
    let loopCount: Int
    /// The server, for a connection's publish to reach the other loops. Set once in the server's init,
    /// before any connection exists; weak, as the server owns the table.
    nonisolated(unsafe) weak var server: WebSocketServer?

    /// Told when a topic gets its first subscriber or loses its last (the Redis bridge).
    private let watcher = Mutex<(@Sendable (Topic) -> Void)?>(nil)

    init(loopCount: Int) { self.loopCount = loopCount }

    func watchSubscribers(_ watcher: (@Sendable (Topic) -> Void)?) { self.watcher.withLock { $0 = watcher } }

    func subscribersChanged(_ topic: Topic) {
        guard let watcher = self.watcher.withLock({ $0 }) else { return }
        watcher(topic)
    }

    func topic(_ name: String) -> Topic {
        self.state.withLock { state in
            if let topic = state.byName[name]?.topic { return topic }
            let id: Int
            if let free = state.freeIDs.popLast() {
                id = free
            } else {
                id = state.nextID
                state.nextID += 1
            }
            let made = Topic(id: id, name: name, table: self)
            state.byName[name] = Entry(topic: made)
            return made
        }
    }

    /// Topics alive now.
    var all: [Topic] { self.state.withLock { $0.byName.values.compactMap(\.topic) } }

    /// Names interned and ids in use, for tests: both shrink as topics go.
    var counts: (names: Int, ids: Int) { self.state.withLock { ($0.byName.count, $0.nextID - $0.freeIDs.count) } }

    /// `topic` is being freed (nothing subscribes or holds it, so no loop lists it): its id is free, and
    /// its name too unless a new topic of that name was made meanwhile.
    ///
    /// Every strong reference a weak load makes here leaves the lock with the result: released inside,
    /// it could be a topic's last and run its deinit, which takes this lock again.
    fileprivate func gone(_ topic: Topic) {
        let current: Topic? = self.state.withLock { state in
            let current = state.byName[topic.name]?.topic
            if current == nil { state.byName[topic.name] = nil }
            state.freeIDs.append(topic.id)
            return current
        }
        withExtendedLifetime(current) {}
    }

    static func bit(ofLoop index: Int) -> UInt64 { 1 << UInt64(min(index, 63)) }
}

/// A published message, framed once (a server's frames are not masked, so every subscriber gets the
/// same bytes) in one allocation: the header, then a link word per loop (the message's place in that
/// loop's ``TopicInbox``), then the frame. Immutable once handed off, but for the links, each written by
/// the publisher before the push that publishes it and read by that loop alone.
final class TopicMessage: ManagedBuffer<TopicMessage.Header, UInt64> {  // Crosses threads as a retained pointer.
    struct Header {
        let topic: Topic
        let frameLength: Int
        let links: Int
        /// The permessage-deflate frame (RSV1 set) after the plain one, 0 if none was made.
        let deflatedLength: Int
        /// The window it was deflated with: only a subscriber whose agreed window is at least this may get it.
        let deflateWindowBits: Int
    }

    /// The message, framed; with `deflated` (its payload deflated with a window of `windowBits`, reset
    /// before and after, so it refers to nothing else), also that frame, for deflate subscribers.
    static func make(_ topic: Topic, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer, loops: Int,
                     deflated: UnsafeRawBufferPointer? = nil, windowBits: Int = 0) -> TopicMessage {
        let headerLength = FrameHeader.length(payloadLength: payload.count, masked: false)
        let deflatedHeader = deflated.map { FrameHeader.length(payloadLength: $0.count, masked: false) } ?? 0
        let deflatedLength = deflated.map { deflatedHeader + $0.count } ?? 0
        let frameLength = headerLength + payload.count
        let made = TopicMessage.create(minimumCapacity: loops + (frameLength + deflatedLength + 7) / 8) { _ in
            Header(topic: topic, frameLength: frameLength, links: loops, deflatedLength: deflatedLength, deflateWindowBits: windowBits)
        }
        let message = unsafeDowncast(made, to: TopicMessage.self)
        message.withUnsafeMutablePointerToElements { words in
            words.initialize(repeating: 0, count: loops)
            let frame = UnsafeMutableRawPointer(words + loops)
            _ = FrameHeader.write(opcode: opcode, fin: true, payloadLength: payload.count, maskKey: nil, into: frame)
            if payload.count > 0 { (frame + headerLength).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
            if let deflated {
                let second = frame + frameLength
                _ = FrameHeader.write(opcode: opcode, fin: true, payloadLength: deflated.count, maskKey: nil, into: second)
                second.storeBytes(of: second.load(as: UInt8.self) | DeflateBits.rsv1, as: UInt8.self)
                if deflated.count > 0 { (second + deflatedHeader).copyMemory(from: deflated.baseAddress!, byteCount: deflated.count) }
            }
        }
        return message
    }

    var topic: Topic { self.header.topic }

    /// The frame's bytes, valid while the message is held.
    @inline(__always)
    var frame: UnsafeRawBufferPointer {
        self.withUnsafeMutablePointers { header, words in
            UnsafeRawBufferPointer(start: words + header.pointee.links, count: header.pointee.frameLength)
        }
    }

    /// The frame for `socket`: the deflated one when there is one and the connection may read it. A
    /// connection whose compressor keeps a history forgets it then: its peer's window now holds this
    /// message, which that compressor never saw.
    @inline(__always)
    func frame(for socket: WebSocket) -> UnsafeRawBufferPointer {
        let bits = socket.extensionBits
        guard bits & DeflateBits.rsv1 != 0 else { return self.frame }
        return self.withUnsafeMutablePointers { header, words in
            guard header.pointee.deflatedLength > 0 else {
                return UnsafeRawBufferPointer(start: words + header.pointee.links, count: header.pointee.frameLength)
            }
            let window: Int
            let deflate = bits & DeflateBits.stateless != 0 ? nil : socket.cold?.deflate
            if bits & DeflateBits.stateless != 0 {
                window = Int(bits & DeflateBits.windowMask) + 8
            } else {
                window = deflate?.agreement.sendWindowBits ?? 0
            }
            let plain = UnsafeRawPointer(words + header.pointee.links)
            guard window >= header.pointee.deflateWindowBits else {
                return UnsafeRawBufferPointer(start: plain, count: header.pointee.frameLength)
            }
            deflate?.forgetSentHistory()
            return UnsafeRawBufferPointer(start: plain + header.pointee.frameLength, count: header.pointee.deflatedLength)
        }
    }

    /// The word that links this message to the next in loop `index`'s inbox.
    @inline(__always)
    func link(_ index: Int) -> UnsafeMutablePointer<UInt64> {
        self.withUnsafeMutablePointerToElements { $0 + index }
    }
}

/// A loop's lock-free inbox of published messages from other threads: a stack that producers push onto
/// with one compare-and-swap and the loop takes whole with one exchange (so no ABA: nothing is ever
/// popped alone). The push that finds it empty wakes the loop (``Loop/wake()``, lock-free too); the
/// loop puts what it takes back in publishing order.
final class TopicInbox: Sendable {
    let loop: Loop
    let index: Int
    /// The newest message (a retained `TopicMessage`'s address), 0 when empty.
    private let head = Atomic<UInt64>(0)

    init(loop: Loop, index: Int) {
        self.loop = loop
        self.index = index
    }

    deinit {
        var left: [TopicMessage] = []
        self.takeAll(into: &left)
    }

    /// Any thread.
    func push(_ message: TopicMessage) {
        let node = UInt64(UInt(bitPattern: Unmanaged.passRetained(message).toOpaque()))
        let link = message.link(self.index)
        var old = self.head.load(ordering: .relaxed)
        while true {
            link.pointee = old
            let (exchanged, current) = self.head.compareExchange(expected: old, desired: node,
                                                                 successOrdering: .releasing, failureOrdering: .relaxed)
            if exchanged { break }
            old = current
        }
        // A loop that is closing drops what is left when its inbox goes (deinit).
        if old == 0 { self.loop.wake() }
    }

    /// Appends everything pushed so far to `pending`, oldest first. The loop's thread only.
    func takeAll(into pending: inout [TopicMessage]) {
        var node = self.head.exchange(0, ordering: .acquiring)
        guard node != 0 else { return }
        let start = pending.count
        while node != 0 {
            let message = Unmanaged<TopicMessage>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(node))!).takeRetainedValue()
            node = message.link(self.index).pointee
            pending.append(message)
        }
        pending[start...].reverse()
    }
}
