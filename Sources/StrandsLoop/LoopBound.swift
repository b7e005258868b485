/// Carries a loop-confined value across threads, checking on each access that it is back on its loop.
///
/// The way to hand a ``TCPStream`` or a delegate to ``Loop/execute(_:)`` from another thread.
public struct LoopBound<Value>: @unchecked Sendable {  // Safe: `value` is only reachable on `loop`.
    public let loop: Loop
    private let _value: Value

    public init(_ value: Value, loop: Loop) {
        self.loop = loop
        self._value = value
    }

    /// The value; traps in debug builds when read off its loop's thread.
    public var value: Value {
        self.loop.assertInLoop()
        return self._value
    }

    /// The value without the thread check, for the caller that knows the access is safe (a reference
    /// taken before the value is shared, or a member that is itself thread-safe).
    public var unsafeValue: Value { self._value }
}
