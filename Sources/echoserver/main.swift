import Dispatch
import Logging
import StrandsCLI
import StrandsTLS
import StrandsWS

#if canImport(Glibc)
import Glibc
#endif

LoggingSystem.bootstrap { LineLogHandler(label: $0) }
EchoServer.run(EchoServerCommand.parseLikeGo())

/// The server's life: listen, report, and shut down on a signal. Not on the main actor: its closures run
/// on Dispatch queues and loop threads.
enum EchoServer {
    static func run(_ options: EchoServerCommand) -> Never {
        let logger = Logger(label: "echoserver")
        do {
            _ = try? System.raiseOpenFileLimit()
            var configuration = WebSocketConfiguration()
            configuration.maxMessageSize = options.maxMessage
            configuration.pingInterval = .milliseconds(Int64((options.pingInterval * 1000).rounded()))
            configuration.idleTimeout = .milliseconds(Int64((options.idleTimeout * 1000).rounded()))
            configuration.compression = options.compression.settings
            var reloadable: ReloadableTLSContext?
            if let certificate = options.tlsCert, let key = options.tlsKey {
                do {
                    reloadable = try ReloadableTLSContext(certificateChain: certificate, privateKey: key,
                                                          releasesIdleBuffers: options.tlsLowMemory)
                    configuration.tls = reloadable
                } catch {
                    die("echoserver", "\(error)")
                }
            }
            let loops = options.workers == 0 ? System.availableCPUs : options.workers
            let group = try LoopGroup(loopCount: loops)
            let handler = EchoHandler()
            let server = WebSocketServer(group: group, configuration: configuration,
                                         handler: options.pubsub ? RoomHandler(echo: handler) : handler)
            handler.server.withLock { $0 = server }
            if let redis = options.redis, let address = EchoServerCommand.redisAddress(redis) {
                let bridge = RedisBridge(server: server, configuration: RedisBridgeConfiguration(host: address.host, port: address.port))
                bridge.start()
                handler.bridge.withLock { $0 = bridge }
            }
            // SIGINT/SIGTERM: graceful shutdown; a second one exits at once. Installed before the startup
            // lines, so whoever reads them may signal at once.
            let signals = DispatchQueue(label: "signals")
            let stopping = Locked(false)
            let children = Locked<[Int32]>([])
            let finished = DispatchSemaphore(value: 0)
            var sources: [any DispatchSourceSignal] = []
            for signo in [SIGINT, SIGTERM] {
                signal(signo, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signo, queue: signals)
                source.setEventHandler {
                    if stopping.withLock({ was in defer { was = true }; return was }) {
                        Output.error("echoserver: second signal, exiting now")
                        exit(128 + signo)
                    }
                    for child in children.withLock({ $0 }) { kill(child, signo) }
                    logger.info("shutting down: closing connections with 1001", metadata: ["open": "\(server.statistics().open)"])
                    server.stopListening()
                    server.closeAll(code: .goingAway, reason: "server shutting down") { finished.signal() }
                    DispatchQueue.global().async {
                        if finished.wait(timeout: .now() + options.grace) == .timedOut {
                            logger.warning("grace period over; dropping the connections left", metadata: ["open": "\(server.statistics().open)"])
                        }
                        group.shutdown()
                        // The set's other processes close theirs in their own grace period.
                        for child in children.withLock({ $0 }) { var status: Int32 = 0; _ = waitpid(child, &status, 0) }
                        logger.info("stopped")
                        exit(0)
                    }
                }
                source.resume()
                sources.append(source)
            }
            // SIGHUP: load the certificate and key again; open connections keep theirs, and a file that
            // does not load leaves the one in use.
            if let reloadable {
                signal(SIGHUP, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: signals)
                source.setEventHandler {
                    do {
                        try reloadable.reload()
                        logger.info("SIGHUP: certificate reloaded", metadata: ["certificate": "\(reloadable.certificateChain)"])
                    } catch {
                        logger.error("SIGHUP: certificate not reloaded, the one in use stays", metadata: ["error": "\(error)"])
                    }
                }
                source.resume()
                sources.append(source)
            }
            if let parent = options.parentPID {
                do {
                    guard try System.terminateWhenParentEnds(parent) else {
                        die("echoserver", "-parent-pid \(parent): not this process's parent (or it has ended)")
                    }
                } catch {
                    die("echoserver", "-parent-pid: \(error)")
                }
            }
            let listener: TCPServer
            do {
                listener = try server.listen(host: options.host, port: options.port, sharedPort: options.sharedPort)
            } catch {
                die("echoserver", "cannot listen on \(options.host):\(options.port): \(error.name) (\(error.message))")
            }
            // -procs: the others of the set, on the port this one holds, each ending with this one.
            if options.procs > 1 {
                let arguments = EchoServerCommand.workerArguments(Array(CommandLine.arguments.dropFirst()),
                                                                  port: listener.address.port, parent: getpid())
                for _ in 1..<options.procs {
                    do {
                        let pid = try Spawn.start(executable: Spawn.executablePath, arguments: arguments, discardOutput: true)
                        children.withLock { $0.append(pid) }
                    } catch {
                        die("echoserver", "-procs: cannot start another process: \(error)")
                    }
                }
            }

            let address = listener.address
            let shown = address.host == "0.0.0.0" || address.host == "::" ? "localhost"
                : address.isIPv6 ? "[\(address.host)]" : address.host
            Output.line("echoserver: listening on \(address) with \(loops) worker loop\(loops == 1 ? "" : "s")"
                + (options.procs > 1 ? " in each of \(options.procs) processes" : "") + ", "
                + "max message \(options.maxMessage) bytes"
                + (options.compression == .off ? "" : ", permessage-deflate \(options.compression.rawValue)")
                + (options.pubsub ? ", rooms on /ws/room/NAME" : "") + (options.redis.map { " through Redis at \($0)" } ?? ""))
            let (ws, http) = configuration.tls == nil ? ("ws", "http") : ("wss", "https")
            Output.line("echoserver: WebSocket endpoint \(ws)://\(shown):\(address.port)/ws/ (any path under /ws/)")
            Output.line("echoserver: health check \(http)://\(shown):\(address.port)/health, metrics /metrics")

            // Stats every few seconds, from a Dispatch timer: reading the counters never blocks a loop.
            let stats = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "stats"))
            let lastMessages = Locked(0)
            if !options.quiet {
                let interval = options.statsInterval
                stats.schedule(deadline: .now() + interval, repeating: interval)
                stats.setEventHandler {
                    let now = server.statistics()
                    let delta = lastMessages.withLock { last -> Int in
                        defer { last = now.messagesReceived }
                        return now.messagesReceived - last
                    }
                    logger.info("stats", metadata: [
                        "connections": "\(now.open)", "messages": "\(now.messagesReceived)",
                        "rate": "\(Int((Double(delta) / interval).rounded()))/s", "errors": "\(now.errors)",
                    ])
                }
                stats.resume()
            }

            withExtendedLifetime((sources, stats)) { dispatchMain() }
        } catch {
            die("echoserver", "\(error)")
        }
    }
}
