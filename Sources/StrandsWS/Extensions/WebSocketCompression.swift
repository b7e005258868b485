/// permessage-deflate (RFC 7692): how a server accepts it and a client offers it. Set
/// ``WebSocketConfiguration/compression`` to turn it on (it is off by default, as in gorilla/websocket).
///
/// Two modes, for two kinds of traffic:
/// - ``Mode/shared``: no context takeover either way. Each message is compressed on its own, with one
///   deflate and one inflate stream per loop reset between messages, so a connection costs no memory
///   for compression at all. Best for many connections with independent messages of a few hundred
///   bytes or more (JSON events, API replies).
/// - ``Mode/dedicated``: context takeover. Each connection keeps the peer's window to inflate with and
///   its own compressor, so a message can refer to the ones before it: much better ratios for streams
///   of small, similar messages, at a per-connection cost (``windowBits`` and ``memoryLevel`` set it;
///   see Docs/Compression.md). A compressor unused for ``idleCompressorTime`` is freed and the next
///   message starts from an empty history, which a sender may always do.
public struct WebSocketCompression: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        case shared
        case dedicated
    }

    public var mode: Mode
    /// The LZ77 window of this side's compressor, 8 to 15 (256 B to 32 KiB); in dedicated mode also
    /// the largest window the peer is asked to use when it lets this side choose. zlib cannot make raw
    /// deflate with 8, so 8 compresses with 9, whose matches never reach past 250 bytes, and is
    /// announced as 8.
    public var windowBits: Int
    /// zlib's `memLevel`, 1 to 9: the size of the compressor's hash table and block buffer.
    public var memoryLevel: Int
    /// zlib's compression level, 1 (fastest) to 9 (smallest).
    public var level: Int
    /// Messages shorter than this are sent uncompressed: below a few hundred bytes deflate saves little
    /// and costs more CPU than the bytes are worth.
    public var threshold: Int
    /// Dedicated mode: a compressor that has sent nothing for this long is freed.
    public var idleCompressorTime: Duration

    public init(mode: Mode, windowBits: Int? = nil, memoryLevel: Int? = nil, level: Int = 6, threshold: Int = 256,
                idleCompressorTime: Duration = .seconds(10)) {
        self.mode = mode
        // Shared streams exist once per loop, so they may as well have zlib's defaults; a dedicated
        // compressor at 12/5 is about 38 KiB instead of 262 KiB (the defaults Python websockets uses too).
        self.windowBits = windowBits ?? (mode == .shared ? 15 : 12)
        self.memoryLevel = memoryLevel ?? (mode == .shared ? 8 : 5)
        self.level = level
        self.threshold = threshold
        self.idleCompressorTime = idleCompressorTime
    }

    /// No context takeover, streams shared per loop: zero bytes per connection.
    public static var shared: WebSocketCompression { WebSocketCompression(mode: .shared) }
    /// Context takeover, a 4 KiB window and a 38 KiB compressor per connection.
    public static var dedicated: WebSocketCompression { WebSocketCompression(mode: .dedicated) }

    /// Why these settings cannot work, or `nil`.
    public var problem: String? {
        if !(8...15).contains(self.windowBits) { return "compression window bits must be 8 to 15, not \(self.windowBits)" }
        if !(1...9).contains(self.memoryLevel) { return "compression memory level must be 1 to 9, not \(self.memoryLevel)" }
        if !(1...9).contains(self.level) { return "compression level must be 1 to 9, not \(self.level)" }
        if self.threshold < 0 { return "compression threshold must not be negative" }
        return nil
    }

    /// The window this side deflates with for an agreed `bits` (zlib's raw deflate starts at 9).
    static func deflateWindow(_ bits: Int) -> Int { max(9, bits) }
}
