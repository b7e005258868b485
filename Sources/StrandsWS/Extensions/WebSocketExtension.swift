/// A negotiated extension on one connection: it turns received messages whose first frame carries its
/// reserved bits back into plain messages, and may transform what is sent. Loop-confined.
///
/// Both calls hand bytes over through non-escaping closures, so an extension can decode into a per-loop
/// buffer and lend it out, with no allocation per message.
public protocol WebSocketExtension: AnyObject {
    /// A received message (`opcode` text or binary) whose first frame carried `rsv` (some of the
    /// factory's bits). Call `deliver` once with the decoded payload, or return why the connection must
    /// fail (the code and reason of the close frame). Text is checked for UTF-8 after decoding.
    func decode(_ payload: UnsafeMutableRawBufferPointer, opcode: Opcode, rsv: UInt8,
                deliver: (UnsafeRawBufferPointer) -> Void) -> (code: CloseCode, reason: String)?

    /// A whole message about to be sent. Call `emit` once with the payload to frame and the reserved
    /// bits to set on it (`0` and the original bytes to send it untouched).
    func encode(_ payload: UnsafeRawBufferPointer, opcode: Opcode, emit: (UnsafeRawBufferPointer, UInt8) -> Void)

    /// The connection is closed: free what the extension holds.
    func release()
}
