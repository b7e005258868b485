import Synchronization

/// Where a ``RedisBridge`` connects and how it behaves when Redis is away.
public struct RedisBridgeConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Topic `name` is Redis channel `channelPrefix + name`, so several applications can share a Redis.
    public var channelPrefix = "strands:"
    /// Per connection attempt, resolution included.
    public var connectTimeout: Duration = .seconds(2)
    /// The wait before the first reconnect; it doubles on each failure up to `maxRetryDelay`, and goes
    /// back to this once both connections are up.
    public var firstRetryDelay: Duration = .milliseconds(50)
    public var maxRetryDelay: Duration = .seconds(2)
    /// Bytes queued toward Redis (a Redis slower than the publishers) past which a publish is not
    /// forwarded, and counted lost.
    public var maxPendingBytes = 16 << 20

    public init(host: String = "127.0.0.1", port: Int = 6379) {
        self.host = host
        self.port = port
    }
}

public enum RedisBridgeState: String, Sendable, Equatable {
    case stopped, connecting, connected, disconnected
}

/// What a bridge has done, for metrics.
public struct RedisBridgeStatistics: Sendable, Equatable {
    public var state: RedisBridgeState
    /// Channels subscribed now: topics with a subscriber in this process.
    public var channels: Int
    /// Times both connections came up (1 after the first start; each reconnect adds one).
    public var connects: Int
    /// Messages sent to Redis.
    public var published: Int
    /// Messages from Redis handed to local subscribers (other processes' and foreign publishers').
    public var received: Int
    /// This process's own messages that came back from Redis and were ignored.
    public var ownEchoes: Int
    /// Publishes not forwarded: Redis unreachable (at-most-once, as Redis pub/sub itself) or too slow.
    public var lost: Int
    /// Messages from Redis that were refused: a broken envelope, or text that is not UTF-8.
    public var invalid: Int
    /// Why the last connection ended or failed, if one did.
    public var lastError: String?
}

/// Spans a server's topics over every process on one Redis (pub/sub): what is published here goes to
/// the topic's Redis channel, and what other processes publish there reaches the subscribers here.
///
/// - One channel per topic, subscribed only while this process has a subscriber to it.
/// - Two connections (Redis' subscriber mode takes a connection to itself), on the server's first loop,
///   with a small RESP client on `TCPStream`; replies are parsed in place.
/// - Each message carries this process's node tag, so its own echo from Redis is ignored; what a
///   foreign publisher (`redis-cli PUBLISH strands:room hello`) sends without the envelope is delivered
///   as text when it is UTF-8, else as binary.
/// - When Redis goes away the bridge reconnects with backoff and subscribes again. Redis pub/sub is
///   at most once: what is published while a connection is down is lost (and counted), here and there.
///
/// ```swift
/// let bridge = RedisBridge(server: server, configuration: RedisBridgeConfiguration(host: "10.0.0.5"))
/// bridge.start()
/// ```
public final class RedisBridge: Sendable {
    public let configuration: RedisBridgeConfiguration
    public let server: WebSocketServer
    private let core: LoopBound<RedisBridgeCore>
    let counters = RedisBridgeCounters()

    /// A server takes one bridge.
    public init(server: WebSocketServer, configuration: RedisBridgeConfiguration) {
        self.configuration = configuration
        self.server = server
        let loop = server.group.loops[0]
        let counters = self.counters
        let made = loop.runAndWait {
            LoopBound(RedisBridgeCore(server: server, configuration: configuration, counters: counters), loop: loop)
        }
        guard let made else { preconditionFailure("a RedisBridge needs a running LoopGroup") }
        self.core = made
    }

    /// Connects, and keeps connecting until ``stop()``. Any thread.
    public func start() {
        let core = self.core
        let attached = self.server.bridgeAttached.load(ordering: .acquiring)
        precondition(!attached, "a server takes one RedisBridge")
        self.server.topicTable.watchSubscribers { [weak self] topic in
            guard let core = self?.core else { return }
            core.loop.execute { core.value.reconcile(topic) }
        }
        _ = core.loop.runAndWait { core.value.start() }
    }

    /// Closes both connections and stops forwarding; waits until done. Any thread but the first loop's.
    public func stop() {
        self.server.topicTable.watchSubscribers(nil)
        let core = self.core
        _ = core.loop.runAndWait { core.value.stop() }
    }

    public var statistics: RedisBridgeStatistics { self.counters.snapshot }
}

/// The bridge's counters: written on its loop, read from anywhere.
final class RedisBridgeCounters: Sendable {
    let state = Atomic<Int>(0)
    let channels = Atomic<Int>(0)
    let connects = Atomic<Int>(0)
    let published = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let ownEchoes = Atomic<Int>(0)
    let lost = Atomic<Int>(0)
    let invalid = Atomic<Int>(0)
    let lastError = Mutex<String?>(nil)

    static let states: [RedisBridgeState] = [.stopped, .connecting, .connected, .disconnected]

    func set(_ state: RedisBridgeState) {
        self.state.store(Self.states.firstIndex(of: state)!, ordering: .relaxed)
    }

    var snapshot: RedisBridgeStatistics {
        RedisBridgeStatistics(
            state: Self.states[self.state.load(ordering: .relaxed)],
            channels: self.channels.load(ordering: .relaxed), connects: self.connects.load(ordering: .relaxed),
            published: self.published.load(ordering: .relaxed), received: self.received.load(ordering: .relaxed),
            ownEchoes: self.ownEchoes.load(ordering: .relaxed), lost: self.lost.load(ordering: .relaxed),
            invalid: self.invalid.load(ordering: .relaxed), lastError: self.lastError.withLock { $0 })
    }
}

/// The bridge's work, on the server's first loop.
final class RedisBridgeCore {
    private let server: WebSocketServer
    private let configuration: RedisBridgeConfiguration
    private let counters: RedisBridgeCounters
    private let loop: Loop
    /// The bridge's loop is the server's first.
    private let loopIndex = 0
    private let prefix: [UInt8]
    /// "STR1" and this process's 16-byte node tag: the head of every message it publishes.
    private let envelope: [UInt8]
    private static let magic: [UInt8] = Array("STR1".utf8)

    private var running = false
    private var attempt = 0
    private var subscriber: RedisLink?
    private var publisher: RedisLink?
    private var connectedLinks = 0
    private var retryDelay: Duration
    private var retryTimer: LoopTimer?
    /// The topics subscribed in Redis (or to be, once connected), by a hash of their names, so a
    /// message's channel is found without making a string.
    private var channels: [UInt64: [Topic]] = [:]
    private var channelCount = 0
    private var outbox: [TopicMessage] = []
    private var scratch = RawBuffer()

    init(server: WebSocketServer, configuration: RedisBridgeConfiguration, counters: RedisBridgeCounters) {
        self.server = server
        self.configuration = configuration
        self.counters = counters
        self.loop = server.group.loops[0]
        self.prefix = Array(configuration.channelPrefix.utf8)
        var generator = SystemRandomNumberGenerator()
        let tag = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        self.envelope = RedisBridgeCore.magic + tag
        self.retryDelay = configuration.firstRetryDelay
        self.loop.addWakeHandler { [weak self] in self?.sendOutbox() }
    }

    deinit { self.scratch.free() }

    func start() {
        guard !self.running else { return }
        self.running = true
        self.server.bridgeAttached.store(true, ordering: .releasing)
        // Topics that had subscribers before the bridge started.
        for topic in self.server.topics { self.reconcile(topic) }
        self.connect()
    }

    func stop() {
        guard self.running else { return }
        self.running = false
        self.server.bridgeAttached.store(false, ordering: .releasing)
        self.retryTimer?.cancel()
        self.retryTimer = nil
        self.closeLinks()
        self.sendOutbox()  // Counted lost.
        self.channels = [:]
        self.channelCount = 0
        self.counters.channels.store(0, ordering: .relaxed)
        self.counters.set(.stopped)
    }

    // MARK: Connections

    private func connect() {
        guard self.running else { return }
        self.attempt += 1
        let attempt = self.attempt
        self.connectedLinks = 0
        self.counters.set(.connecting)
        for isSubscriber in [true, false] {
            TCPStream.connect(on: self.loop, host: self.configuration.host, port: self.configuration.port,
                              timeout: self.configuration.connectTimeout) { [weak self] result in
                guard let self, self.running, attempt == self.attempt else {
                    if case .success(let stream) = result { stream.close() }
                    return
                }
                switch result {
                case .failure(let error):
                    self.failed("connect to Redis at \(self.configuration.host):\(self.configuration.port): \(error)")
                case .success(let stream):
                    self.linkUp(stream, isSubscriber: isSubscriber, attempt: attempt)
                }
            }
        }
    }

    private func linkUp(_ stream: TCPStream, isSubscriber: Bool, attempt: Int) {
        let maxReply = self.server.configuration.maxMessageSize + 4096
        let link = RedisLink(
            stream: stream, attempt: attempt, maxReply: maxReply,
            onReply: { [unowned self] reply, bytes in
                if isSubscriber { self.subscriberReply(reply, bytes) } else { self.publisherReply(reply, bytes) }
            },
            onClose: { [unowned self] link, reason in
                if link.attempt == self.attempt { self.failed(reason) }
            })
        stream.delegate = link
        stream.highWaterMark = max(stream.highWaterMark, self.configuration.maxPendingBytes)
        stream.startReading()
        if isSubscriber {
            self.subscriber = link
            let names = self.channels.values.joined().map { self.configuration.channelPrefix + $0.name }
            if !names.isEmpty { link.send(["SUBSCRIBE"] + names) }
        } else {
            self.publisher = link
        }
        self.connectedLinks += 1
        if self.connectedLinks == 2 {
            self.retryDelay = self.configuration.firstRetryDelay
            self.counters.connects.add(1, ordering: .relaxed)
            self.counters.set(.connected)
        }
    }

    /// A connection failed or closed: drop both, and try again after the backoff.
    private func failed(_ reason: String) {
        guard self.running else { return }
        self.counters.lastError.withLock { $0 = reason }
        self.closeLinks()
        self.attempt += 1  // Whatever is still connecting for the old attempt is dropped.
        self.counters.set(.disconnected)
        guard self.retryTimer == nil else { return }
        let delay = self.retryDelay
        self.retryDelay = min(self.retryDelay * 2, self.configuration.maxRetryDelay)
        self.retryTimer = self.loop.scheduleTimer(after: delay) { [weak self] in
            guard let self else { return }
            self.retryTimer = nil
            self.connect()
        }
    }

    private func closeLinks() {
        self.subscriber?.close()
        self.publisher?.close()
        self.subscriber = nil
        self.publisher = nil
        self.connectedLinks = 0
    }

    // MARK: Subscriptions

    /// Brings Redis in line with whether `topic` has subscribers in this process now.
    func reconcile(_ topic: Topic) {
        guard self.running else { return }
        let wanted = topic.statistics.subscribers > 0
        let key = Self.hash(topic.name.utf8)
        let known = self.channels[key]?.contains { $0 === topic } ?? false
        guard wanted != known else { return }
        let channel = self.configuration.channelPrefix + topic.name
        if wanted {
            self.channels[key, default: []].append(topic)
            self.channelCount += 1
            self.subscriber?.send(["SUBSCRIBE", channel])
        } else {
            self.channels[key]?.removeAll { $0 === topic }
            if self.channels[key]?.isEmpty == true { self.channels[key] = nil }
            self.channelCount -= 1
            self.subscriber?.send(["UNSUBSCRIBE", channel])
        }
        self.counters.channels.store(self.channelCount, ordering: .relaxed)
    }

    private static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    // MARK: Inbound

    private func subscriberReply(_ reply: RESPReader.Reply, _ bytes: UnsafeRawBufferPointer) {
        if reply.value.kind == .error {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[reply.value.start..<(reply.value.start + reply.value.count)]), as: UTF8.self)
            self.counters.lastError.withLock { $0 = "Redis: \(text)" }
            return
        }
        guard reply.value.kind == .array || reply.value.kind == .push, reply.value.count == 3,
              let kind = reply.element(0), let channel = reply.element(1), let payload = reply.element(2),
              kind.kind == .bulkString, channel.kind == .bulkString, payload.kind == .bulkString,
              Self.equals(bytes, kind, "message")
        else { return }  // Subscribe and unsubscribe confirmations.
        self.received(channel: UnsafeRawBufferPointer(rebasing: bytes[channel.start..<(channel.start + channel.count)]),
                      payload: UnsafeRawBufferPointer(rebasing: bytes[payload.start..<(payload.start + payload.count)]))
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ value: RESPReader.Value, _ text: StaticString) -> Bool {
        guard value.count == text.utf8CodeUnitCount else { return false }
        return UnsafeRawBufferPointer(rebasing: bytes[value.start..<(value.start + value.count)])
            .elementsEqual(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private func received(channel: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) {
        guard channel.count >= self.prefix.count, channel.starts(with: self.prefix) else {
            self.counters.invalid.add(1, ordering: .relaxed)
            return
        }
        let name = UnsafeRawBufferPointer(rebasing: channel[self.prefix.count...])
        guard let topic = self.channels[Self.hash(name)]?.first(where: { $0.name.utf8.elementsEqual(name) }) else { return }
        let message: TopicMessage
        if payload.count >= self.envelope.count && payload.starts(with: RedisBridgeCore.magic) {
            let tag = UnsafeRawBufferPointer(rebasing: payload[RedisBridgeCore.magic.count..<self.envelope.count])
            if tag.elementsEqual(self.envelope[RedisBridgeCore.magic.count...]) {
                self.counters.ownEchoes.add(1, ordering: .relaxed)
                return
            }
            let frame = UnsafeRawBufferPointer(rebasing: payload[self.envelope.count...])
            guard let header = Self.wholeMessageFrameHeader(frame) else {
                self.counters.invalid.add(1, ordering: .relaxed)
                return
            }
            message = self.server.makeMessage(topic, frame[0] == 0x81 ? .text : .binary,
                                              UnsafeRawBufferPointer(rebasing: frame[header...]), on: self.loopIndex)
        } else {
            // A foreign publisher's bare payload.
            let opcode: Opcode = UTF8Validator.isValid(payload) ? .text : .binary
            message = self.server.makeMessage(topic, opcode, payload, on: self.loopIndex)
        }
        self.counters.received.add(1, ordering: .relaxed)
        _ = self.server.publish(message, skipping: -1, toBridge: false)
    }

    /// The header length of `frame` if it is one unmasked, final text or binary frame with no RSV bit,
    /// of exactly its length, and UTF-8 if text: what another node would have made, and all a
    /// subscriber may get.
    static func wholeMessageFrameHeader(_ frame: UnsafeRawBufferPointer) -> Int? {
        guard frame.count >= 2, frame[0] == 0x81 || frame[0] == 0x82, frame[1] & 0x80 == 0 else { return nil }
        var header = 2
        var length = Int(frame[1] & 0x7F)
        if length == 126 {
            guard frame.count >= 4 else { return nil }
            length = Int(frame[2]) << 8 | Int(frame[3])
            header = 4
        } else if length == 127 {
            guard frame.count >= 10 else { return nil }
            var value: UInt64 = 0
            for index in 2..<10 { value = value << 8 | UInt64(frame[index]) }
            guard value <= UInt64(Int.max) else { return nil }
            length = Int(value)
            header = 10
        }
        guard frame.count - header == length else { return nil }
        guard frame[0] == 0x82 || UTF8Validator.isValid(UnsafeRawBufferPointer(rebasing: frame[header...])) else { return nil }
        return header
    }

    private func publisherReply(_ reply: RESPReader.Reply, _ bytes: UnsafeRawBufferPointer) {
        guard reply.value.kind == .error else { return }  // PUBLISH answers with how many got it.
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[reply.value.start..<(reply.value.start + reply.value.count)]), as: UTF8.self)
        self.counters.lastError.withLock { $0 = "Redis: \(text)" }
    }

    // MARK: Outbound

    /// Sends what was published since the last wake-up, in one write: `PUBLISH channel envelope+frame`.
    private func sendOutbox() {
        self.server.bridgeInbox.takeAll(into: &self.outbox)
        guard !self.outbox.isEmpty else { return }
        defer { self.outbox.removeAll(keepingCapacity: self.outbox.capacity <= 4096) }
        guard let publisher = self.publisher, self.connectedLinks == 2 else {
            self.counters.lost.add(self.outbox.count, ordering: .relaxed)
            return
        }
        var sent = 0
        var lost = 0
        publisher.stream.withCork {
            for message in self.outbox {
                let frame = message.frame
                if publisher.stream.pendingWriteBytes + frame.count > self.configuration.maxPendingBytes {
                    lost += 1
                    continue
                }
                self.scratch.removeAll()
                var name = message.topic.name
                // Written piece by piece: no string is made per message.
                name.withUTF8 { name in
                    RedisLink.append("*3\r\n$7\r\nPUBLISH\r\n$", to: &self.scratch)
                    RedisLink.append(decimal: self.prefix.count + name.count, to: &self.scratch)
                    RedisLink.append("\r\n", to: &self.scratch)
                    self.prefix.withUnsafeBytes { self.scratch.append($0) }
                    self.scratch.append(UnsafeRawBufferPointer(name))
                }
                RedisLink.append("\r\n$", to: &self.scratch)
                RedisLink.append(decimal: self.envelope.count + frame.count, to: &self.scratch)
                RedisLink.append("\r\n", to: &self.scratch)
                self.envelope.withUnsafeBytes { self.scratch.append($0) }
                self.scratch.append(frame)
                RedisLink.append("\r\n", to: &self.scratch)
                do {
                    try publisher.stream.write(self.scratch.bytes)
                    sent += 1
                } catch {
                    lost += 1
                }
            }
        }
        if self.scratch.capacity > 1 << 20 { self.scratch.free() }
        self.counters.published.add(sent, ordering: .relaxed)
        if lost > 0 { self.counters.lost.add(lost, ordering: .relaxed) }
    }
}

@available(*, unavailable)
extension RedisBridgeCore: Sendable {}
