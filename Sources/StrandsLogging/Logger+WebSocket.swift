// A swift-log `Logger` as the library's log hook. In a module of its own so that StrandsWS depends on
// C libraries alone: only those who want swift-log link it.
import Logging
import StrandsWS

extension WebSocketLog {
    /// A log that writes to `logger`, at its level and above, with its metadata and the library's
    /// (`peer`, `side`, `error`, …).
    public init(_ logger: Logger) {
        self.init(level: WebSocketLog.Level(logger.logLevel), origin: logger) { level, message, metadata in
            logger.log(level: Logger.Level(level), "\(message)",
                       metadata: metadata.isEmpty ? nil : metadata.mapValues { .string($0) })
        }
    }
}

extension WebSocketConfiguration {
    /// The swift-log logger that connection errors and lifecycle events go to (never per message);
    /// nil, the default, for none. Sets ``WebSocketConfiguration/log``.
    public var logger: Logger? {
        get { self.log?.origin as? Logger }
        set { self.log = newValue.map(WebSocketLog.init) }
    }
}

extension WebSocketLog.Level {
    init(_ level: Logger.Level) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .critical
        }
    }
}

extension Logger.Level {
    init(_ level: WebSocketLog.Level) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .critical
        }
    }
}
