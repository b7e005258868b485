import CUV

#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address with a port (`sockaddr_in` / `sockaddr_in6`).
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// Large enough for either family; `sockaddr_storage` would be 128 bytes.
    private var storage: sockaddr_in6

    /// Parses a numeric address (`127.0.0.1`, `::1`, `[::1]`); host names go through ``resolve(host:port:)``.
    public init(ip: String, port: Int) throws(UVError) {
        guard (0...65535).contains(port) else {
            throw UVError(code: UV_EINVAL.rawValue, context: "port \(port) is outside 0...65535")
        }
        var ip = ip
        if ip.hasPrefix("["), ip.hasSuffix("]") { ip = String(ip.dropFirst().dropLast()) }
        self.storage = sockaddr_in6()
        let rc: Int32 = withUnsafeMutableBytes(of: &self.storage) { raw in
            if ip.contains(":") {
                return uv_ip6_addr(ip, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self))
            }
            return uv_ip4_addr(ip, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self))
        }
        // uv_ip4_addr accepts some malformed text (inet_pton is stricter); check with inet_pton too.
        if rc < 0 || !SocketAddress.isNumeric(ip) {
            throw UVError(code: UV_EINVAL.rawValue, context: "'\(ip)' is not a numeric IPv4 or IPv6 address")
        }
    }

    /// Copies an address libuv or the kernel filled in.
    init?(_ address: UnsafePointer<sockaddr>) {
        self.storage = sockaddr_in6()
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            withUnsafeMutableBytes(of: &self.storage) { raw in
                raw.copyMemory(from: UnsafeRawBufferPointer(start: address, count: MemoryLayout<sockaddr_in>.size))
            }
        case AF_INET6:
            withUnsafeMutableBytes(of: &self.storage) { raw in
                raw.copyMemory(from: UnsafeRawBufferPointer(start: address, count: MemoryLayout<sockaddr_in6>.size))
            }
        default:
            return nil
        }
    }

    static func isNumeric(_ ip: String) -> Bool {
        var scratch = in6_addr()
        return withUnsafeMutableBytes(of: &scratch) { raw in
            uv_inet_pton(ip.contains(":") ? AF_INET6 : AF_INET, ip, raw.baseAddress) == 0
        }
    }

    public var isIPv6: Bool { Int32(self.storage.sin6_family) == AF_INET6 }

    /// The port, in host byte order.
    public var port: Int {
        get { Int(UInt16(bigEndian: self.storage.sin6_port)) }  // sin_port sits at the same offset.
        set { self.storage.sin6_port = UInt16(newValue).bigEndian }
    }

    /// The numeric host, without brackets.
    public var host: String {
        var text = [CChar](repeating: 0, count: 64)
        self.withSockAddr { address in
            if self.isIPv6 {
                _ = uv_ip6_name(UnsafeRawPointer(address).assumingMemoryBound(to: sockaddr_in6.self), &text, 64)
            } else {
                _ = uv_ip4_name(UnsafeRawPointer(address).assumingMemoryBound(to: sockaddr_in.self), &text, 64)
            }
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `127.0.0.1:8082` or `[::1]:8082`.
    public var description: String { self.isIPv6 ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }

    /// Lends the address as a `sockaddr` pointer for the duration of `body`.
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>) -> R) -> R {
        var copy = self.storage
        return withUnsafeBytes(of: &copy) { raw in body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self)) }
    }

    public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool { lhs.description == rhs.description }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.description) }

    /// Resolves `host` synchronously: a numeric address directly, a name through `getaddrinfo`.
    /// Blocks the calling thread on DNS, so use it at start-up, not on a loop; loops resolve with
    /// ``Loop/resolve(host:port:_:)``.
    public static func resolve(host: String, port: Int) throws(UVError) -> [SocketAddress] {
        if let numeric = try? SocketAddress(ip: host, port: port) { return [numeric] }
        guard (0...65535).contains(port) else {
            throw UVError(code: UV_EINVAL.rawValue, context: "port \(port) is outside 0...65535")
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        if rc != 0 {
            throw UVError(code: cuv_translate_eai(rc), context: "resolve '\(host)'")
        }
        defer { freeaddrinfo(result) }
        return SocketAddress.collect(result)
    }

    static func collect(_ list: UnsafeMutablePointer<addrinfo>?) -> [SocketAddress] {
        var addresses: [SocketAddress] = []
        var node = list
        while let entry = node {
            if let address = entry.pointee.ai_addr.flatMap({ SocketAddress(UnsafePointer($0)) }),
                !addresses.contains(address)
            {
                addresses.append(address)
            }
            node = entry.pointee.ai_next
        }
        return addresses
    }
}

extension Loop {
    /// Resolves `host` without blocking the loop: numeric addresses at once, names through `uv_getaddrinfo`
    /// (libuv's thread pool). `completion` runs on this loop. Loop-confined.
    public func resolve(
        host: String,
        port: Int,
        _ completion: @escaping (Result<[SocketAddress], UVError>) -> Void
    ) {
        self.assertInLoop()
        if let numeric = try? SocketAddress(ip: host, port: port) {
            completion(.success([numeric]))
            return
        }
        guard (0...65535).contains(port), !host.isEmpty else {
            completion(.failure(UVError(code: UV_EINVAL.rawValue, context: "resolve '\(host)' port \(port)")))
            return
        }
        let request = UnsafeMutablePointer<uv_getaddrinfo_t>.allocate(capacity: 1)
        let pending = PendingResolve(host: host, completion: completion)
        request.pointee.data = Unmanaged.passRetained(pending).toOpaque()
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        let rc = uv_getaddrinfo(self.uvLoop, request, { request, status, result in
            let request = request!
            let pending = Unmanaged<PendingResolve>.fromOpaque(request.pointee.data!).takeRetainedValue()
            request.deallocate()
            defer { if let result { uv_freeaddrinfo(result) } }
            if status < 0 {
                pending.completion(.failure(UVError(code: status, context: "resolve '\(pending.host)'")))
            } else {
                let addresses = SocketAddress.collect(result)
                if addresses.isEmpty {
                    pending.completion(.failure(UVError(code: UV_EAI_NONAME.rawValue, context: "resolve '\(pending.host)'")))
                } else {
                    pending.completion(.success(addresses))
                }
            }
        }, host, String(port), &hints)
        if rc < 0 {
            Unmanaged<PendingResolve>.fromOpaque(request.pointee.data!).release()
            request.deallocate()
            completion(.failure(UVError(code: rc, context: "resolve '\(host)'")))
        }
    }
}

private final class PendingResolve {
    let host: String
    let completion: (Result<[SocketAddress], UVError>) -> Void
    init(host: String, completion: @escaping (Result<[SocketAddress], UVError>) -> Void) {
        self.host = host
        self.completion = completion
    }
}
