import StrandsLoop
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("TCP errors")
struct TCPErrorTests {
    private func connect(_ host: String, _ port: Int, timeout: Duration? = nil) async throws -> UVError? {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        return await onLoop(loop) { finish in
            TCPStream.connect(on: loop, host: host, port: port, timeout: timeout) { result in
                switch result {
                case .success(let stream):
                    stream.close()
                    finish(nil)
                case .failure(let error):
                    finish(error)
                }
            }
        }
    }

    @Test("connecting to a port nobody listens on fails with ECONNREFUSED naming the address")
    func connectionRefused() async throws {
        let port = try closedPort()
        let error = try #require(try await self.connect("127.0.0.1", port))
        #expect(error == .connectionRefused)
        #expect(error.name == "ECONNREFUSED")
        #expect(error.description == "connect to 127.0.0.1:\(port): ECONNREFUSED (connection refused)")
    }

    @Test("a name that does not resolve fails with a resolver error naming the host")
    func unknownHost() async throws {
        let error = try #require(try await self.connect("no-such-host.invalid", 80))
        #expect(error.name.hasPrefix("EAI_"))
        #expect(error.description.contains("no-such-host.invalid"))
    }

    @Test("malformed addresses and ports are rejected before any I/O", arguments: [
        ("300.1.2.3", 80), ("127.0.0.1", 70000), ("127.0.0.1", -1), ("", 80), ("::zz", 80),
    ])
    func badAddress(host: String, port: Int) async throws {
        let error = try #require(try await self.connect(host, port))
        #expect(error.code < 0)
        #expect(!error.description.isEmpty)
        #expect(throws: UVError.self) { try SocketAddress(ip: host, port: port) }
    }

    @Test("a connect the peer never completes gives up with ETIMEDOUT at the timeout")
    func connectTimeout() async throws {
        // A socket that listens with a backlog of 0 and never accepts: once its accept queue holds one
        // connection, Linux drops further SYNs, so the next connect hangs until our timeout.
        let (fd, port) = try boundLoopbackSocket(port: 0, backlog: 0)
        defer { close(fd) }
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        struct Outcome: Sendable { var errors: [String]; var elapsed: UInt64 }
        let outcome: Outcome = await onLoop(loop) { finish in
            var errors: [String] = []
            var remaining = 4
            let start = loop.now
            for _ in 0..<4 {
                TCPStream.connect(on: loop, host: "127.0.0.1", port: port, timeout: .milliseconds(300)) { result in
                    switch result {
                    case .success: break  // Those the kernel queued; they stay open until shutdown.
                    case .failure(let error): errors.append(error.description)
                    }
                    remaining -= 1
                    if remaining == 0 { finish(Outcome(errors: errors, elapsed: loop.now - start)) }
                }
            }
        }
        #expect(!outcome.errors.isEmpty, "the accept queue never filled")
        #expect(outcome.errors.allSatisfy { $0 == "connect to 127.0.0.1:\(port): ETIMEDOUT (connection timed out)" },
                "\(outcome.errors)")
        #expect(outcome.elapsed >= 300)
    }

    @Test("listening on a port another socket holds fails with EADDRINUSE")
    func addressInUse() throws {
        let group = try LoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let first = try group.listen(host: "127.0.0.1", port: 0) { $0.close() }
        #expect(throws: UVError.addressInUse) {
            _ = try group.listen(host: "127.0.0.1", port: first.port) { $0.close() }
        }
        do {
            _ = try group.listen(host: "127.0.0.1", port: first.port) { $0.close() }
        } catch {
            #expect(error.description == "bind 127.0.0.1:\(first.port): EADDRINUSE (address already in use)")
        }
        first.close()
    }

    @Test("listening on a group that has shut down fails and leaves no socket bound to the port")
    func listenAfterShutdown() throws {
        let group = try LoopGroup(loopCount: 2)
        group.shutdown()
        let port = try closedPort()
        #expect(throws: UVError.self) {
            _ = try group.listen(host: "127.0.0.1", port: port) { $0.close() }
        }
        // A socket left bound (even one that never listened) holds the port against a bind without
        // SO_REUSEADDR.
        let (fd, _) = try boundLoopbackSocket(port: port)
        close(fd)
    }

    @Test("listening on an address this machine does not have fails with EADDRNOTAVAIL")
    func addressNotAvailable() throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a host. bind() sends no traffic.
        #expect(throws: UVError.addressNotAvailable) {
            _ = try group.listen(host: "192.0.2.1", port: 0) { $0.close() }
        }
    }

    @Test("writing to a closed stream throws instead of crashing")
    func writeAfterClose() async throws {
        let group = try LoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let server = try loop.listen(host: "127.0.0.1", port: 0) { $0.startReading() }
        let port = server.port
        let outcome: String = await onLoop(loop) { finish in
            TCPStream.connect(on: loop, host: "127.0.0.1", port: port) { result in
                guard case .success(let stream) = result else { return finish("connect failed") }
                stream.close()
                do {
                    try stream.write([1, 2, 3])
                    finish("write succeeded")
                } catch let error as UVError {
                    finish(error.name)
                } catch {
                    finish("\(error)")
                }
            }
        }
        #expect(outcome == "ENOTCONN")
    }
}
