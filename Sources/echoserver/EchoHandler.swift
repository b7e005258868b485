import StrandsCLI
import StrandsWS

/// Echo under /ws/, JSON health at /health, Prometheus metrics at /metrics, 404 for the rest. One instance serves every connection.
final class EchoHandler: WebSocketHandler {
    /// Set once the server exists; read by /health on any loop.
    let server = Locked<WebSocketServer?>(nil)
    /// With -redis.
    let bridge = Locked<RedisBridge?>(nil)

    func shouldUpgrade(_ request: HTTPRequest) -> UpgradeDecision {
        request.path.hasPrefix("/ws/") ? .accept() : .reject(status: 404)
    }

    func respond(to request: HTTPRequest) -> HTTPResponse {
        let stats = self.server.withLock { $0 }?.statistics() ?? WebSocketStatistics()
        if request.path == "/metrics" {
            return Self.metrics(stats, topics: self.server.withLock { $0 }?.topics ?? [],
                                redis: self.bridge.withLock { $0 }?.statistics)
        }
        guard request.path == "/health" else { return .status(404) }
        let body = "{\"status\":\"ok\",\"connections\":\(stats.open),\"messages\":\(stats.messagesReceived),\"errors\":\(stats.errors)}"
        return HTTPResponse(status: 200, contentType: "application/json", body: body)
    }

    /// The counters every loop keeps (relaxed atomics, one writer each), summed when scraped.
    static func metrics(_ stats: WebSocketStatistics, topics: [Topic], redis: RedisBridgeStatistics?) -> HTTPResponse {
        var text = PrometheusText()
        text.add("strands_connections_open", .gauge, help: "WebSocket connections open now.", value: stats.open)
        text.add("strands_connections_opened_total", .counter, help: "WebSocket connections opened (upgrades completed).",
                 value: stats.opened)
        text.add("strands_messages_received_total", .counter, help: "WebSocket messages received.", value: stats.messagesReceived)
        text.add("strands_messages_sent_total", .counter, help: "WebSocket messages sent.", value: stats.messagesSent)
        text.add("strands_connection_errors_total", .counter,
                 help: "Connections that ended in an error (protocol, transport, timeout).", value: stats.errors)
        for (cause, count) in stats.errorsByCause.labelled {
            text.add("strands_connection_errors_by_cause_total", .counter,
                     help: "Connections that ended in an error, by cause.", value: count, labels: [("cause", cause)])
        }
        text.add("strands_tcp_bytes_received_total", .counter, help: "TCP bytes read on the server's loops.", value: stats.bytesReceived)
        text.add("strands_tcp_bytes_sent_total", .counter, help: "TCP bytes written on the server's loops.", value: stats.bytesSent)
        let rooms = topics.map { ($0.name, $0.statistics) }.sorted { $0.0 < $1.0 }
        text.add("strands_topics", .gauge, help: "Topics (rooms) made.", value: rooms.count)
        for (name, counts) in rooms {
            text.add("strands_topic_subscribers", .gauge, help: "Subscribers of a topic now.", value: counts.subscribers,
                     labels: [("topic", name)])
        }
        for (name, counts) in rooms {
            text.add("strands_topic_published_total", .counter, help: "Messages published on a topic.", value: counts.published,
                     labels: [("topic", name)])
        }
        for (name, counts) in rooms {
            text.add("strands_topic_delivered_total", .counter, help: "Deliveries of a topic's messages to subscribers.",
                     value: counts.delivered, labels: [("topic", name)])
        }
        for (name, counts) in rooms {
            text.add("strands_topic_dropped_total", .counter,
                     help: "Deliveries refused: a subscriber over its send cap or closing.", value: counts.dropped,
                     labels: [("topic", name)])
        }
        if let redis {
            text.add("strands_redis_connected", .gauge, help: "1 while both connections to Redis are up.",
                     value: redis.state == .connected ? 1 : 0)
            text.add("strands_redis_channels", .gauge, help: "Redis channels subscribed: rooms with a member here.", value: redis.channels)
            text.add("strands_redis_connects_total", .counter, help: "Times the connections to Redis came up.", value: redis.connects)
            text.add("strands_redis_published_total", .counter, help: "Messages sent to Redis.", value: redis.published)
            text.add("strands_redis_received_total", .counter, help: "Messages from other processes through Redis.", value: redis.received)
            text.add("strands_redis_lost_total", .counter, help: "Messages not forwarded to Redis (down or too slow).", value: redis.lost)
            text.add("strands_redis_invalid_total", .counter, help: "Messages from Redis refused as malformed.", value: redis.invalid)
        }
        return HTTPResponse(status: 200, contentType: PrometheusText.contentType, body: text.text)
    }

    func webSocket(_ socket: WebSocket, didReceive message: WebSocketMessage) {
        // The reply is framed into the loop's cork and leaves with the others of this read.
        socket.send(message.opcode, message.bytes)
    }
}
