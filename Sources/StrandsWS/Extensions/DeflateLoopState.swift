/// permessage-deflate's share of a loop: the streams every stateless connection uses (one inflater,
/// one compressor per distinct setting), the buffer every message is inflated or deflated into, and
/// the sweep that frees dedicated compressors left idle. Made on the loop's first compressed message;
/// loop-confined.
final class DeflateLoopState {
    let loop: Loop
    /// The message at hand, inflated, lent to the handler. Separate from `deflated`, so a handler can
    /// send (compressed) what it is lent.
    @exclusivity(unchecked) var inflated = RawBuffer()
    /// The message being sent, deflated, until it is framed.
    @exclusivity(unchecked) var deflated = RawBuffer()
    /// What each buffer may keep between messages: enough for the default message limit, so messages up
    /// to 1 MiB reuse it; one larger gives its memory back.
    static let retainedOutput = 1 << 20

    private var inflater: DeflateStream?
    private var compressors: [(key: Int, stream: DeflateStream)] = []

    /// Dedicated compressors that exist, for the idle sweep.
    private var live: [DeflateConnection] = []
    private var sweepTimer: LoopTimer?

    init(loop: Loop) { self.loop = loop }

    deinit {
        self.inflated.free()
        self.deflated.free()
    }

    /// The shared inflater (a 32 KiB window reads any peer's messages), reset for a new message.
    func sharedInflater() -> DeflateStream? {
        if let inflater = self.inflater {
            inflater.reset()
            return inflater
        }
        self.inflater = DeflateStream(inflateWindowBits: 15)
        return self.inflater
    }

    /// The shared compressor for these settings; it is reset after each message.
    func sharedCompressor(_ settings: WebSocketCompression, windowBits: Int) -> DeflateStream? {
        let key = settings.level << 8 | settings.memoryLevel << 4 | windowBits
        for entry in self.compressors where entry.key == key { return entry.stream }
        guard let stream = DeflateStream(level: settings.level, windowBits: windowBits,
                                         memoryLevel: settings.memoryLevel) else { return nil }
        self.compressors.append((key, stream))
        return stream
    }

    /// Give back a large buffer after the message that needed it.
    @inline(__always)
    func trimInflated() {
        if self.inflated.capacity > Self.retainedOutput { self.inflated.free() } else { self.inflated.removeAll() }
    }

    @inline(__always)
    func trimDeflated() {
        if self.deflated.capacity > Self.retainedOutput { self.deflated.free() } else { self.deflated.removeAll() }
    }

    // MARK: Idle dedicated compressors

    /// Dedicated compressors alive on this loop.
    var liveCompressorCount: Int { self.live.count }

    func compressorMade(_ connection: DeflateConnection, idleAfter interval: Duration) {
        connection.liveIndex = self.live.count
        self.live.append(connection)
        if self.sweepTimer == nil {
            self.sweepTimer = self.loop.scheduleTimer(after: interval, repeating: interval) { [unowned self] in
                self.sweep()
            }
        }
    }

    func compressorFreed(_ connection: DeflateConnection) {
        let index = connection.liveIndex
        guard index >= 0 else { return }
        let last = self.live.removeLast()
        if index < self.live.count {
            self.live[index] = last
            last.liveIndex = index
        }
        connection.liveIndex = -1
        if self.live.isEmpty {
            self.sweepTimer?.cancel()
            self.sweepTimer = nil
        }
    }

    /// Frees every dedicated compressor that sent nothing since the previous sweep, and gives their
    /// memory back to the system: a compressor is below malloc's mmap threshold, so without a trim the
    /// freed pages stay in the process for reuse and the sweep would not lower its size.
    private func sweep() {
        var freed = 0
        var index = self.live.count - 1
        while index >= 0 {
            let connection = self.live[index]
            if connection.sentSinceSweep {
                connection.sentSinceSweep = false
            } else {
                connection.dropCompressor()
                freed += 1
            }
            index -= 1
        }
        if freed > 0 { System.releaseFreeMemory() }
    }
}

@available(*, unavailable)
extension DeflateLoopState: Sendable {}
