/// permessage-deflate state of one connection that keeps a history in at least one direction (context
/// takeover). Streams are made on first use: an inflater when the first compressed message arrives,
/// a compressor when the first message is compressed, freed again by the loop's sweep when idle.
/// A direction without takeover uses the loop's shared stream. Loop-confined.
final class DeflateConnection {
    let agreement: DeflateAgreement
    let settings: WebSocketCompression
    unowned(unsafe) let loopState: DeflateLoopState
    private var inflater: DeflateStream?
    private var compressor: DeflateStream?
    /// Slot in the loop's list of live compressors (-1: none).
    var liveIndex = -1
    var sentSinceSweep = false

    init(agreement: DeflateAgreement, settings: WebSocketCompression, loopState: DeflateLoopState) {
        self.agreement = agreement
        self.settings = settings
        self.loopState = loopState
    }

    /// The inflater for the next received message.
    func inflaterForMessage() -> DeflateStream? {
        guard self.agreement.receiveTakeover else { return self.loopState.sharedInflater() }
        if self.inflater == nil { self.inflater = DeflateStream(inflateWindowBits: self.agreement.receiveWindowBits) }
        return self.inflater
    }

    /// The compressor for the next sent message; with `reset` true, the caller must reset it after.
    func compressorForMessage() -> (stream: DeflateStream, reset: Bool)? {
        guard self.agreement.sendTakeover else {
            return self.loopState.sharedCompressor(self.settings, windowBits: self.agreement.sendWindowBits).map { ($0, true) }
        }
        self.sentSinceSweep = true
        if let compressor = self.compressor { return (compressor, false) }
        guard let made = DeflateStream(level: self.settings.level, windowBits: self.agreement.sendWindowBits,
                                       memoryLevel: self.settings.memoryLevel) else { return nil }
        self.compressor = made
        self.loopState.compressorMade(self, idleAfter: self.settings.idleCompressorTime)
        return (made, false)
    }

    /// Frees the compressor; the next message starts from an empty history, which the peer's inflater
    /// reads like any other (a sender may always send a message that refers to nothing before it).
    func dropCompressor() {
        guard self.compressor != nil else { return }
        self.compressor = nil
        self.loopState.compressorFreed(self)
    }

    /// The peer was sent a message this compressor did not make (a topic's, deflated once for every
    /// subscriber): its next message must not refer back past it.
    func forgetSentHistory() {
        if self.agreement.sendTakeover { self.compressor?.reset() }
    }

    /// The connection is closed.
    func release() {
        self.dropCompressor()
        self.inflater = nil
    }
}

@available(*, unavailable)
extension DeflateConnection: Sendable {}
