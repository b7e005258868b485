import CUV

/// A libuv failure: libuv's negative error code plus what Strands was doing when it happened.
///
/// `description` reads like `connect to 127.0.0.1:1: ECONNREFUSED (connection refused)`: the operation,
/// libuv's error name (`uv_err_name`) and its message (`uv_strerror`).
public struct UVError: Error, Hashable, Sendable, CustomStringConvertible {
    /// libuv's error code: a negative errno, or one of libuv's own `UV_EAI_*` codes.
    public let code: Int32
    /// What was being done, for example `connect to [::1]:8082`. Not part of equality.
    public let context: String?

    public init(code: Int32, context: String? = nil) {
        self.code = code
        self.context = context
    }

    /// libuv's symbolic name for the code, e.g. `ECONNREFUSED`. Wraps `uv_err_name`.
    public var name: String { String(cString: uv_err_name(self.code)) }

    /// libuv's message for the code, e.g. `connection refused`. Wraps `uv_strerror`.
    public var message: String { String(cString: uv_strerror(self.code)) }

    public var description: String {
        let what = "\(self.name) (\(self.message))"
        guard let context = self.context else { return what }
        return "\(context): \(what)"
    }

    /// The same error, with `context` describing the operation.
    public func with(context: String) -> UVError { UVError(code: self.code, context: context) }

    public static func == (lhs: UVError, rhs: UVError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }

    /// Lets callers write `catch UVError.connectionRefused`.
    public static func ~= (pattern: UVError, value: any Error) -> Bool {
        (value as? UVError)?.code == pattern.code
    }
}

extension UVError {
    public static let connectionRefused = UVError(code: UV_ECONNREFUSED.rawValue)
    public static let connectionReset = UVError(code: UV_ECONNRESET.rawValue)
    public static let addressInUse = UVError(code: UV_EADDRINUSE.rawValue)
    public static let addressNotAvailable = UVError(code: UV_EADDRNOTAVAIL.rawValue)
    public static let invalidArgument = UVError(code: UV_EINVAL.rawValue)
    public static let brokenPipe = UVError(code: UV_EPIPE.rawValue)
    public static let endOfFile = UVError(code: UV_EOF.rawValue)
    public static let cancelled = UVError(code: UV_ECANCELED.rawValue)
    public static let timedOut = UVError(code: UV_ETIMEDOUT.rawValue)
    public static let notConnected = UVError(code: UV_ENOTCONN.rawValue)
    public static let unknownHost = UVError(code: UV_EAI_NONAME.rawValue)
    public static let tryAgain = UVError(code: UV_EAGAIN.rawValue)
}

/// Converts libuv's "negative means error" convention in one place.
@inline(__always)
func check(_ rc: Int32, _ context: @autoclosure () -> String? = nil) throws(UVError) {
    if rc < 0 { throw UVError(code: rc, context: context()) }
}
