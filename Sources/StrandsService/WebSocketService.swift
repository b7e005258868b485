// A WebSocket server as a swift-service-lifecycle `Service`, in a module of its own so that StrandsWS
// keeps its dependency rule (C libraries only).
import ServiceLifecycle
import StrandsLoop
import StrandsWS

/// Runs a ``WebSocketServer`` in a `ServiceGroup`: the group's graceful shutdown (SIGTERM, say, with
/// `gracefulShutdownSignals: [.sigterm]`) stops the listening and closes every connection with 1001,
/// waiting up to `gracePeriod`; cancellation does the same without the wait. The group's loops are
/// not shut down here: they may serve other things; shut them down after the group returns.
///
/// ```swift
/// let server = WebSocketServer(group: loops) { socket in … }
/// try server.listen(host: "0.0.0.0", port: 8080)
/// let services = ServiceGroup(services: [WebSocketService(server)],
///                             gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await services.run()
/// await loops.shutdownGracefully()
/// ```
public struct WebSocketService: Service {
    public let server: WebSocketServer
    public let gracePeriod: Duration

    public init(_ server: WebSocketServer, gracePeriod: Duration = .seconds(10)) {
        self.server = server
        self.gracePeriod = gracePeriod
    }

    public func run() async throws {
        let stop = AsyncMailbox<Bool>()
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                _ = await stop.next()
            } onCancel: {
                stop.post(false)
            }
        } onGracefulShutdown: {
            stop.post(true)
        }
        if Task.isCancelled {
            self.server.closeAll()  // No waiting when cancelled.
            self.server.stopListening()
            return
        }
        await self.server.shutdownGracefully(gracePeriod: self.gracePeriod)
    }
}
