import StrandsWS

let group = try LoopGroup()  // one loop per core, each thread pinned to its core

// A server: each connection is served by a task on its loop.
let server = WebSocketServer(group: group) { socket in
    for try await message in socket.messages { try await socket.send(message) }
}
let port = try server.listen(host: "127.0.0.1", port: 0).port

// A client: send one message, print the reply, close.
let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/chat", on: group.next())
try await client.send(text: "hello")
for try await reply in client.messages {
    print(reply.text)  // hello
    await client.close()  // the messages end once the close handshake completes
}
await server.shutdownGracefully()  // a long-running server would `await server.serve()`: until SIGINT/SIGTERM
await group.shutdownGracefully()
