// A chat server on the async API: rooms are topics, so a message reaches everyone in its room on every
// loop; GET /rooms lists the rooms in use as JSON; SIGINT or SIGTERM closes everyone with 1001 and exits.
//
//   chat [-port N] [-workers N]     (-port 0: any free port; it prints the one it got)
//
//   ws://127.0.0.1:PORT/chat/ROOM?name=NAME   join ROOM (letters, digits, '-', '_'; up to 32) as NAME
//   GET http://127.0.0.1:PORT/rooms           {"rooms":[{"name":"lobby","members":2}]}
import StrandsWS
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

func usage(_ message: String) -> Never {
    let text = "chat: \(message)\nusage: chat [-port N] [-workers N]\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

var port = 8080
var workers = 0
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst().flatMap(Int.init) else { usage("\(flag) needs a number") }
    switch flag.drop(while: { $0 == "-" }) {
    case "port" where (0...65535).contains(value): port = value
    case "workers" where (0...1024).contains(value): workers = value
    default: usage("bad flag or value: \(flag) \(value)")
    }
}

/// The room named in `/chat/ROOM`, if the path is one and the name is allowed.
func roomName(_ request: HTTPRequest) -> String? {
    let parts = request.path.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 3, parts[0].isEmpty, parts[1] == "chat", (1...32).contains(parts[2].count),
          parts[2].utf8.allSatisfy({ $0 == 45 || $0 == 95 || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) })
    else { return nil }
    return String(parts[2])
}

/// `name=` from the query, up to 32 characters of it, or "anon".
func userName(_ request: HTTPRequest) -> String {
    for pair in (request.query ?? "").split(separator: "&") where pair.hasPrefix("name=") {
        let name = pair.dropFirst(5).replacing("+", with: " ").prefix(32)
        if !name.isEmpty { return String(name) }
    }
    return "anon"
}

/// JSON string escaping for the few characters that need it.
func json(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

let group = try LoopGroup(loopCount: workers == 0 ? System.availableCPUs : workers)
let running = Mutex<WebSocketServer?>(nil)  // For GET /rooms, which lists the server's topics.

let server = WebSocketServer(group: group, shouldUpgrade: { request in
    roomName(request) == nil ? .reject(status: 404) : .accept()
}, respond: { request in
    guard request.method == "GET", request.path == "/rooms" else { return .status(404) }
    let rooms = (running.withLock { $0 }?.topics ?? [])
        .filter { $0.name.hasPrefix("room/") && $0.statistics.subscribers > 0 }
        .map { "{\"name\":\(json(String($0.name.dropFirst(5)))),\"members\":\($0.statistics.subscribers)}" }
        .sorted()
    return HTTPResponse(status: 200, contentType: "application/json", body: "{\"rooms\":[\(rooms.joined(separator: ","))]}")
}) { socket in
    guard let room = roomName(socket.request), let topic = await socket.topic("room/\(room)") else { return }
    let name = userName(socket.request)
    await socket.subscribe(topic)
    await socket.publish(topic, text: "* \(name) joined \(room)")
    defer { running.withLock { $0 }?.publish(topic, text: "* \(name) left") }
    for try await message in socket.messages where message.isText {
        await socket.publish(topic, text: "\(name): \(message.text)")
    }
}
running.withLock { $0 = server }
let listener = try server.listen(host: "127.0.0.1", port: port)
print("listening on 127.0.0.1:\(listener.port)")
fflush(nil)
let signal = await server.serve()
print("stopped by signal \(signal)")
await group.shutdownGracefully()
