// An echo server on the async API: every message on any path comes back.
//
//   async-echo [-port N] [-workers N] [-borrowing]
//
// -port 0: any free port (it prints the one it got). -borrowing: the zero-copy form, forEachMessage,
// where each message is answered from the read buffer; without it, `for try await` over owned messages.
import StrandsWS

#if canImport(Glibc)
import Glibc
#endif

/// Prints `message` and the usage on stderr and exits 2, as a bad flag should.
func usage(_ message: String) -> Never {
    let text = "async-echo: \(message)\nusage: async-echo [-port N] [-workers N] [-borrowing]\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

var port = 8082
var workers = 0
var borrowing = false
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    if flag.drop(while: { $0 == "-" }) == "borrowing" {
        borrowing = true
        continue
    }
    guard let value = arguments.popFirst().flatMap(Int.init) else {
        usage("\(flag) needs a number")
    }
    switch flag.drop(while: { $0 == "-" }) {
    case "port" where (0...65535).contains(value): port = value
    case "workers" where (0...1024).contains(value): workers = value
    default:
        usage("bad flag or value: \(flag) \(value)")
    }
}

let zeroCopy = borrowing
let group = try LoopGroup(loopCount: workers == 0 ? System.availableCPUs : workers)
let server = WebSocketServer(group: group) { socket in
    if zeroCopy {
        try await socket.forEachMessage { message in socket.sendNow(message) }
    } else {
        for try await message in socket.messages { try await socket.send(message) }
    }
}
let listener = try server.listen(host: "127.0.0.1", port: port)
print("listening on 127.0.0.1:\(listener.port)")
fflush(nil)
let signal = await server.serve()  // Until SIGINT or SIGTERM; every connection then closes with 1001.
print("stopped by signal \(signal)")
await group.shutdownGracefully()
