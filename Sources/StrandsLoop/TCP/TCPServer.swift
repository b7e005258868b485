import CUV
import Synchronization

/// A listening TCP port served by every loop of a group: one `SO_REUSEPORT` socket per loop, so the kernel
/// spreads new connections over the loops and no connection is ever handed between threads.
///
/// Created with ``LoopGroup/listen(host:port:backlog:onAccept:)`` or ``Loop/listen(host:port:backlog:onAccept:)``.
/// `onAccept` runs on the loop that accepted, with a stream whose reading is off.
public final class TCPServer: Sendable {
    /// The bound address; with port 0 this carries the port the kernel chose.
    public let address: SocketAddress
    /// The bound port.
    public var port: Int { self.address.port }
    private let listeners: [LoopBound<TCPListener>]

    init(address: SocketAddress, listeners: [LoopBound<TCPListener>]) {
        self.address = address
        self.listeners = listeners
    }

    /// Stops accepting on every loop; connections already accepted stay open. Safe from any thread.
    public func close() {
        for listener in self.listeners {
            listener.loop.execute { listener.value.close() }
        }
    }
}

/// The per-loop listening handle behind a ``TCPServer``. Loop-confined.
///
/// Lifetime: allocated and retained (through `handle.data`) when its loop adopts the socket; `close()` calls
/// `uv_close`; the close callback frees the handle and releases the listener.
final class TCPListener: LoopHandleOwner {
    let loop: Loop
    let handle: UnsafeMutablePointer<uv_tcp_t>
    let make: @Sendable (Loop) throws(UVError) -> TCPConnection
    let onAccept: @Sendable (TCPConnection) -> Void
    private var closing = false
    /// Accept failures (EMFILE and friends); libuv keeps a spare descriptor to shed such connections.
    private(set) var acceptErrors = 0

    /// Adopts a bound socket and starts listening. On failure the descriptor is closed.
    init(loop: Loop, fd: Int32, backlog: Int32, make: @escaping @Sendable (Loop) throws(UVError) -> TCPConnection,
         onAccept: @escaping @Sendable (TCPConnection) -> Void) throws(UVError) {
        self.loop = loop
        self.make = make
        self.onAccept = onAccept
        self.handle = .allocate(capacity: 1)
        var rc = loop.isShuttingDown ? UV_ECANCELED.rawValue : uv_tcp_init(loop.uvLoop, self.handle)
        if rc < 0 {
            _ = cuv_close_fd(fd)
            self.handle.deallocate()
            throw UVError(code: rc, context: "uv_tcp_init")
        }
        self.handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        rc = uv_tcp_open(self.handle, uv_os_sock_t(fd))
        if rc < 0 { _ = cuv_close_fd(fd) }
        if rc == 0 {
            rc = uv_listen(cuv_tcp_as_stream(self.handle), backlog) { server, status in
                let listener = Unmanaged<TCPListener>.fromOpaque(server!.pointee.data!).takeUnretainedValue()
                listener.accept(status: status)
            }
        }
        if rc < 0 {
            self.close()
            throw UVError(code: rc, context: "listen")
        }
    }

    private func accept(status: Int32) {
        guard status == 0, !self.closing else {
            self.acceptErrors += 1
            return
        }
        guard let connection = try? self.make(self.loop) else {
            self.acceptErrors += 1
            return
        }
        if uv_accept(cuv_tcp_as_stream(self.handle), connection.stream) != 0 {
            self.acceptErrors += 1
            connection.tcpClose()
            return
        }
        connection.tcpSetNoDelay(true)
        self.onAccept(connection)
    }

    func close() {
        guard !self.closing else { return }
        self.closing = true
        closeOwnedHandle(cuv_tcp_as_handle(self.handle))
    }

    func closeForShutdown() { self.close() }
}

@available(*, unavailable)
extension TCPListener: Sendable {}

extension LoopGroup {
    /// Listens on `host:port` with one `SO_REUSEPORT` socket per loop. Call it from outside the group's loops:
    /// it waits until every loop listens.
    ///
    /// - Parameters:
    ///   - host: A numeric address or a name (resolved now, first address used). `0.0.0.0` or `::` for all.
    ///   - port: 0 lets the kernel choose; read it back from ``TCPServer/port``.
    ///   - backlog: The accept queue length; the kernel caps it at `net.core.somaxconn`.
    ///   - onAccept: Runs on the accepting loop for each new connection.
    /// - Throws: ``UVError/addressInUse`` when another socket holds the port, and other bind errors, with
    ///   the address in the description.
    public func listen(
        host: String,
        port: Int,
        backlog: Int = 1024,
        onAccept: @escaping @Sendable (TCPStream) -> Void
    ) throws(UVError) -> TCPServer {
        try TCPServer.open(loops: self.loops, host: host, port: port, backlog: backlog, make: TCPStream.make,
                           onAccept: { onAccept(unsafeDowncast($0, to: TCPStream.self)) })
    }

    /// Listens like ``listen(host:port:backlog:onAccept:)``, accepting each connection into an object
    /// `make` creates on the accepting loop (a protocol connection that subclasses ``TCPConnection``).
    package func listen(
        host: String,
        port: Int,
        backlog: Int = 1024,
        sharedPort: Bool = false,
        make: @escaping @Sendable (Loop) throws(UVError) -> TCPConnection,
        onAccept: @escaping @Sendable (TCPConnection) -> Void
    ) throws(UVError) -> TCPServer {
        try TCPServer.open(loops: self.loops, host: host, port: port, backlog: backlog, sharedPort: sharedPort, make: make,
                           onAccept: onAccept)
    }
}

extension Loop {
    /// Listens on `host:port` on this loop alone; see ``LoopGroup/listen(host:port:backlog:onAccept:)``.
    /// May be called on the loop's thread, before the loop runs, or from another thread (it then waits).
    public func listen(
        host: String,
        port: Int,
        backlog: Int = 1024,
        onAccept: @escaping @Sendable (TCPStream) -> Void
    ) throws(UVError) -> TCPServer {
        try TCPServer.open(loops: [self], host: host, port: port, backlog: backlog, make: TCPStream.make,
                           onAccept: { onAccept(unsafeDowncast($0, to: TCPStream.self)) })
    }
}

extension TCPServer {
    static func open(
        loops: [Loop],
        host: String,
        port: Int,
        backlog: Int,
        sharedPort: Bool = false,
        make: @escaping @Sendable (Loop) throws(UVError) -> TCPConnection,
        onAccept: @escaping @Sendable (TCPConnection) -> Void
    ) throws(UVError) -> TCPServer {
        guard let first = try SocketAddress.resolve(host: host, port: port).first else {
            throw UVError(code: UV_EAI_NONAME.rawValue, context: "resolve '\(host)'")
        }
        var address = first
        // SO_REUSEPORT would let us share a port another process of this user already serves, and both
        // would get half the connections. A plain bind first tells "in use" apart, then is let go; unless
        // sharing is the point (`sharedPort`: a set of processes started together serving one port).
        if port != 0 && !sharedPort {
            let probe = address.withSockAddr { cuv_bound_socket($0, 0) }
            if probe < 0 { throw UVError(code: probe, context: "bind \(address)") }
            _ = cuv_close_fd(probe)
        }
        var fds: [Int32] = []
        for _ in loops {
            let fd = address.withSockAddr { cuv_bound_socket($0, 1) }
            if fd < 0 {
                for open in fds { _ = cuv_close_fd(open) }
                throw UVError(code: fd, context: "bind \(address)")
            }
            if address.port == 0 {
                // Every other loop's socket binds the port the kernel picked for the first one.
                let chosen = cuv_socket_port(fd)
                if chosen < 0 {
                    for open in fds + [fd] { _ = cuv_close_fd(open) }
                    throw UVError(code: chosen, context: "getsockname")
                }
                address.port = Int(chosen)
            }
            fds.append(fd)
        }
        var listeners: [LoopBound<TCPListener>] = []
        var failure: UVError?
        for (loop, fd) in zip(loops, fds) {
            if failure != nil {
                _ = cuv_close_fd(fd)
                continue
            }
            let backlog = Int32(clamping: backlog)
            let result = loop.runAndWait { () -> Result<LoopBound<TCPListener>, UVError> in
                do throws(UVError) {
                    let listener = try TCPListener(loop: loop, fd: fd, backlog: backlog, make: make, onAccept: onAccept)
                    return .success(LoopBound(listener, loop: loop))
                } catch {
                    return .failure(error)
                }
            }
            switch result {
            case .success(let listener)?: listeners.append(listener)
            case .failure(let error)?: failure = error.with(context: "listen on \(address)")
            case nil:
                // The loop refused the task, so no listener took the socket: it is still ours to close.
                _ = cuv_close_fd(fd)
                failure = UVError.cancelled.with(context: "listen on \(address): loop is shutting down")
            }
        }
        let server = TCPServer(address: address, listeners: listeners)
        if let failure {
            server.close()
            throw failure
        }
        return server
    }
}
