// strands-autobahn: drives StrandsWS through the Autobahn TestSuite cases (as run by kosoku).
//
//   strands-autobahn server [--host 127.0.0.1] [--port 9002] [--compression off|shared|dedicated]
//       An echo server for `kosoku ws://HOST:PORT/ws/x`; prints "listening on HOST:PORT".
//   strands-autobahn client [--url ws://127.0.0.1:9001] [--agent Strands] [--compression off|shared|dedicated]
//       The Autobahn client protocol against `kosoku -m fuzzingserver`: /getCaseCount, then /runCase for
//       each case (echoing every message), then /updateReports.
import Dispatch
import StrandsCLI
import StrandsWS

#if canImport(Glibc)
import Glibc
#endif

func printError(_ message: String) { Output.error("strands-autobahn: \(message)") }

func fail(_ message: String) -> Never { die("strands-autobahn", message, status: 2) }

/// Echoes every message with its own opcode. Stateless.
final class Echo: WebSocketHandler {
    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        socket.send(message.opcode, message.bytes)
    }
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else { fail("usage: strands-autobahn server|client [flags]") }
arguments.removeFirst()
var options: [String: String] = [:]
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
    guard flag.hasPrefix("--"), !arguments.isEmpty else { fail("bad argument '\(flag)'") }
    options[String(flag.dropFirst(2))] = arguments.removeFirst()
}

/// Autobahn's cases send messages up to 16 MiB; the conformance runs allow that much.
let configuration: WebSocketConfiguration = {
    var configuration = WebSocketConfiguration()
    configuration.maxMessageSize = 64 << 20
    // Group 9 echoes messages of up to 16 MiB: each must fit under the send cap whole.
    configuration.maxPendingBytes = 64 << 20
    var compression: WebSocketCompression
    switch options["compression"] ?? "off" {
    case "off": return configuration
    case "shared": compression = .shared
    case "dedicated": compression = .dedicated
    case let other: fail("bad --compression '\(other)' (off, shared or dedicated)")
    }
    // Every message through the compressor, however short: the conformance run exercises it all.
    compression.threshold = 0
    configuration.compression = compression
    return configuration
}()

switch command {
case "server":
    let host = options["host"] ?? "127.0.0.1"
    guard let port = Int(options["port"] ?? "9002") else { fail("bad --port") }
    do {
        let group = try LoopGroup()
        let server = WebSocketServer(group: group, configuration: configuration, handler: Echo())
        let listener = try server.listen(host: host, port: port)
        Output.line("listening on \(listener.address)")
        while true { pause() }
    } catch {
        fail("\(error)")
    }

case "client":
    let base = options["url"] ?? "ws://127.0.0.1:9001"
    let agent = options["agent"] ?? "Strands"
    do {
        let group = try LoopGroup(loopCount: 1)
        let loop = group.loops[0]

        /// Runs one connection to completion and returns the first text message it got, if any.
        final class Run: WebSocketHandler, @unchecked Sendable {  // Safe: used on the one loop only.
            let echo: Bool
            var firstText: String?
            var done: ((String?) -> Void)?
            init(echo: Bool, done: @escaping (String?) -> Void) {
                self.echo = echo
                self.done = done
            }
            func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
                if self.firstText == nil && message.opcode == .text { self.firstText = message.text }
                if self.echo { socket.send(message.opcode, message.bytes) }
            }
            func webSocket(_ socket: WebSocket, didCloseWith code: CloseCode, reason: String) {
                self.done?(self.firstText)
                self.done = nil
            }
        }
        func run(_ path: String, echo: Bool) -> String? {
            let configuration = configuration
            let result = Locked<String??>(nil)
            let finished = DispatchSemaphore(value: 0)
            loop.execute {
                let handler = Run(echo: echo) { text in
                    result.withLock { $0 = .some(text) }
                    finished.signal()
                }
                WebSocketClient.connect(to: base + path, on: loop, configuration: configuration, handler: handler) { outcome in
                    if case .failure(let error) = outcome {
                        printError("\(path): \(error)")
                        handler.done?(nil)
                        handler.done = nil
                    }
                }
            }
            finished.wait()  // The fuzzing server ends every case; kosoku's own timeouts bound it.
            return result.withLock { $0 } ?? nil
        }
        guard let countText = run("/getCaseCount", echo: false), let count = Int(countText) else {
            fail("could not read the case count from \(base)")
        }
        print("running \(count) cases against \(base)")
        for index in 1...count {
            _ = run("/runCase?case=\(index)&agent=\(agent)", echo: true)
        }
        _ = run("/updateReports?agent=\(agent)", echo: false)
        print("done")
        group.shutdown()
    } catch {
        fail("\(error)")
    }

default:
    fail("unknown command '\(command)' (server or client)")
}
