import ArgumentParser
import StrandsWS

/// `-compression off|shared|dedicated`, as echoserver and perftest spell it.
public enum CompressionChoice: String, ExpressibleByArgument, CaseIterable, Sendable, Codable {
    case off, shared, dedicated

    /// The library's settings for this choice (`nil`: off).
    public var settings: WebSocketCompression? {
        switch self {
        case .off: nil
        case .shared: .shared
        case .dedicated: .dedicated
        }
    }
}
