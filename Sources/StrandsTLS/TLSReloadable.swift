#if canImport(StrandsLoop)  // Not in the fuzzers' one-module build (scripts/fuzz.sh).
import StrandsLoop
#endif

/// A server's TLS whose certificate can be replaced while it runs: new connections get the context
/// loaded last, connections already open keep theirs (OpenSSL holds a context as long as a connection
/// made from it lives), so a reload drops nobody. A reload that fails keeps the context in use.
///
/// ```swift
/// let tls = try ReloadableTLSContext(certificateChain: "fullchain.pem", privateKey: "key.pem")
/// configuration.tls = tls
/// // later, on SIGHUP:
/// try tls.reload()
/// ```
public final class ReloadableTLSContext: ConnectionSecurity {
    public let certificateChain: String
    public let privateKey: String
    /// Taken once per accepted connection, and by a reload.
    private let current: Locked<TLSContext>

    public let releasesIdleBuffers: Bool

    /// `releasesIdleBuffers`: see ``TLSContext/server(certificateChain:privateKey:releasesIdleBuffers:)``.
    public init(certificateChain: String, privateKey: String, releasesIdleBuffers: Bool = false) throws(TLSError) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.releasesIdleBuffers = releasesIdleBuffers
        self.current = Locked(try TLSContext.server(certificateChain: certificateChain, privateKey: privateKey,
                                                    releasesIdleBuffers: releasesIdleBuffers))
    }

    /// Loads the files again; on success, connections accepted from now on use them. Any thread.
    public func reload() throws(TLSError) {
        let fresh = try TLSContext.server(certificateChain: self.certificateChain, privateKey: self.privateKey,
                                          releasesIdleBuffers: self.releasesIdleBuffers)
        self.current.withLock { $0 = fresh }
    }

    /// The context new connections get now.
    public var context: TLSContext { self.current.withLock { $0 } }

    public func secure(_ connection: TCPConnection, serverName: String?, _ completion: @escaping ((any Error)?) -> Void) throws {
        try self.context.secure(connection, serverName: serverName, completion)
    }
}
