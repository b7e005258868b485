import CUV

extension TCPStream {
    /// Connects to `host:port` on `loop`: a numeric IPv4/IPv6 address, or a name resolved with
    /// `uv_getaddrinfo` whose addresses are tried in order until one accepts. Loop-confined.
    ///
    /// - Parameters:
    ///   - timeout: Gives up with ``UVError/timedOut`` after this long, counting resolution and every attempt;
    ///     `nil` leaves it to the kernel (about two minutes for a silent host).
    ///   - completion: Runs on `loop` with a connected stream (reading off, Nagle off) or the error of the
    ///     last attempt, whose description names the address, e.g.
    ///     `connect to 127.0.0.1:1: ECONNREFUSED (connection refused)`.
    public static func connect(
        on loop: Loop,
        host: String,
        port: Int,
        timeout: Duration? = nil,
        _ completion: @escaping (Result<TCPStream, UVError>) -> Void
    ) {
        TCPConnection.connect(on: loop, host: host, port: port, timeout: timeout, make: TCPStream.make) { result in
            completion(result.map { unsafeDowncast($0, to: TCPStream.self) })
        }
    }

    /// Connects to one address; see ``connect(on:host:port:timeout:_:)``.
    public static func connect(
        on loop: Loop,
        to address: SocketAddress,
        timeout: Duration? = nil,
        _ completion: @escaping (Result<TCPStream, UVError>) -> Void
    ) {
        Self.connect(on: loop, host: address.host, port: address.port, timeout: timeout, completion)
    }
}

extension TCPConnection {
    /// Connects like ``TCPStream/connect(on:host:port:timeout:_:)``, into an object `make` creates for
    /// each attempt (a protocol connection that subclasses this class).
    /// `source`: the local address to connect from (port 0: any), for a client that needs more ports
    /// than one address has, say.
    package static func connect(
        on loop: Loop,
        host: String,
        port: Int,
        timeout: Duration?,
        source: SocketAddress? = nil,
        make: @escaping (Loop) throws(UVError) -> TCPConnection,
        _ completion: @escaping (Result<TCPConnection, UVError>) -> Void
    ) {
        loop.assertInLoop()
        let attempt = ConnectAttempt(loop: loop, host: host, make: make, completion: completion)
        attempt.source = source
        if let timeout {
            attempt.timer = loop.scheduleTimer(after: timeout) { [attempt] in attempt.timedOut() }
        }
        loop.resolve(host: host, port: port) { result in
            switch result {
            case .success(let addresses):
                attempt.addresses = addresses
                attempt.tryNext()
            case .failure(let error):
                attempt.finish(.failure(error))
            }
        }
    }
}

/// One connect operation across the addresses a name resolved to. Retained by the `uv_connect_t` in flight.
private final class ConnectAttempt {
    let loop: Loop
    let host: String
    let make: (Loop) throws(UVError) -> TCPConnection
    var completion: ((Result<TCPConnection, UVError>) -> Void)?
    var addresses: [SocketAddress] = []
    var nextIndex = 0
    var current: TCPConnection?
    var currentAddress: SocketAddress?
    var timer: LoopTimer?
    var lastError: UVError?
    var source: SocketAddress?

    init(loop: Loop, host: String, make: @escaping (Loop) throws(UVError) -> TCPConnection,
         completion: @escaping (Result<TCPConnection, UVError>) -> Void) {
        self.loop = loop
        self.make = make
        self.host = host
        self.completion = completion
    }

    func tryNext() {
        guard self.completion != nil else { return }
        guard self.nextIndex < self.addresses.count else {
            self.finish(.failure(self.lastError ?? UVError(code: UV_EAI_NONAME.rawValue, context: "resolve '\(self.host)'")))
            return
        }
        let address = self.addresses[self.nextIndex]
        self.nextIndex += 1
        let stream: TCPConnection
        do {
            stream = try self.make(self.loop)
        } catch {
            self.finish(.failure(error.with(context: "connect to \(address)")))
            return
        }
        self.current = stream
        self.currentAddress = address
        if let source = self.source, source.isIPv6 == address.isIPv6 {
            var bound = source.withSockAddr { cuv_client_socket($0) }
            if bound >= 0 {
                let fd = bound
                bound = uv_tcp_open(stream.handle, uv_os_sock_t(fd))
                if bound < 0 { _ = cuv_close_fd(fd) }
            }
            if bound < 0 {
                stream.tcpClose()
                self.current = nil
                self.lastError = UVError(code: bound, context: "bind \(source) to connect to \(address)")
                self.tryNext()
                return
            }
        }
        let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        let rc = address.withSockAddr { sockaddr in
            uv_tcp_connect(request, stream.handle, sockaddr) { request, status in
                let request = request!
                let attempt = Unmanaged<ConnectAttempt>.fromOpaque(request.pointee.data!).takeRetainedValue()
                request.deallocate()
                attempt.connected(status: status)
            }
        }
        if rc < 0 {
            Unmanaged<ConnectAttempt>.fromOpaque(request.pointee.data!).release()
            request.deallocate()
            self.connected(status: rc)
        }
    }

    private func connected(status: Int32) {
        guard let stream = self.current, let address = self.currentAddress else { return }
        self.current = nil
        guard self.completion != nil else {
            stream.tcpClose()  // Timed out or cancelled meanwhile.
            return
        }
        if status == 0 {
            stream.tcpSetNoDelay(true)
            self.finish(.success(stream))
        } else {
            stream.tcpClose()
            self.lastError = UVError(code: status, context: "connect to \(address)")
            self.tryNext()
        }
    }

    func timedOut() {
        let target = self.currentAddress.map { "connect to \($0)" } ?? "connect to \(self.host)"
        self.current?.tcpClose()  // Its connect callback then reports ECANCELED and is ignored.
        self.current = nil
        self.finish(.failure(UVError.timedOut.with(context: target)))
    }

    func finish(_ result: Result<TCPConnection, UVError>) {
        self.timer?.cancel()
        self.timer = nil
        guard let completion = self.completion else { return }
        self.completion = nil
        completion(result)
    }
}
