/// Why a handshake response was refused, in words.
struct HandshakeFailure: Error, Equatable {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
