import Foundation
import StrandsTestSupport
import StrandsWS

/// The built `echoserver` (or `perftest`) binary, next to this test bundle, run as a child process.
final class ServerProcess: @unchecked Sendable {  // Safe: fields are set in init, then only read.
    let process = Process()
    let port: Int
    private let stdout = Pipe()
    private let stderr = Pipe()
    private let output = Locked(Data())
    private let outputChanged = Events<Bool>()  // false at end of output
    private let readerDone = DispatchSemaphore(value: 0)

    static func binary(_ name: String) -> URL {
        // The test bundle and the products of the package share one build folder.
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return me.deletingLastPathComponent().appendingPathComponent(name)
    }

    /// Starts `echoserver` on port 0 with `arguments` and waits for its "listening on" line.
    convenience init(_ arguments: [String] = []) throws {
        // -parent-pid: should this test process crash, its servers end with it instead of living on.
        try self.init(binary: "echoserver",
                      arguments: ["-port", "0", "-host", "127.0.0.1", "-parent-pid", "\(getpid())"] + arguments)
    }

    /// Starts the built product `binary` with `arguments` (through `stdbuf -oL`, so that its standard
    /// output is line-buffered into the pipe) and waits for a "listening on HOST:PORT" line.
    init(binary: String, arguments: [String]) throws {
        self.process.executableURL = URL(fileURLWithPath: "/usr/bin/stdbuf")
        self.process.arguments = ["-oL", Self.binary(binary).path] + arguments
        self.process.standardOutput = self.stdout
        self.process.standardError = self.stderr
        let lines = LineWaiter()
        let output = self.output
        let changed = self.outputChanged
        let done = self.readerDone
        // A thread of its own reads the pipe with plain blocking reads. Foundation's readabilityHandler
        // would watch the descriptor with a dispatch source, and libdispatch's epoll manager can crash
        // when such a descriptor is closed while other tests spawn children that briefly inherit it.
        let fd = self.stdout.fileHandleForReading.fileDescriptor
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = Glibc.read(fd, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                let text = output.withLock { data -> String in
                    data.append(contentsOf: buffer[0..<n])
                    return String(decoding: data, as: UTF8.self)
                }
                changed.post(true)
                if let line = text.split(separator: "\n").first(where: { $0.contains("listening on") }) {
                    lines.post(String(line))
                }
            }
            changed.post(false)
            lines.post("EOF")
            done.signal()
        }
        reader.start()
        try self.process.run()
        let line = lines.wait()
        guard let range = line.range(of: "listening on "), let colon = line[range.upperBound...].firstIndex(of: " "),
              let port = Int(line[range.upperBound..<colon].split(separator: ":").last ?? "")
        else {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
            let errors = String(decoding: self.stderr.fileHandleForReading.availableDataIfAny, as: UTF8.self)
            throw ProcessError("echoserver did not start: \(line) \(errors)")
        }
        self.port = port
    }

    /// Waits for a line of standard output containing `text`; "" if the output ends without one.
    func nextLine(containing text: String) async -> String {
        while true {
            if let line = self.outputText.split(separator: "\n").first(where: { $0.contains(text) }) { return String(line) }
            if await !self.outputChanged.next() { return "" }
        }
    }

    var outputText: String { String(decoding: self.output.withLock { $0 }, as: UTF8.self) }
    var errorText: String { String(decoding: self.stderr.fileHandleForReading.availableDataIfAny, as: UTF8.self) }

    /// Resident memory of the server in bytes (`VmRSS`).
    var residentBytes: Int {
        let status = (try? String(contentsOfFile: "/proc/\(self.process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    func signal(_ signo: Int32) { kill(self.process.processIdentifier, signo) }

    /// Waits for the process to end and returns its status (bounded by the caller's time limit).
    /// Its output is then complete: ``outputText`` holds every line it wrote.
    func waitForExit() -> Int32 {
        self.process.waitUntilExit()
        self.waitForEndOfOutput()
        return self.process.terminationStatus
    }

    /// Returns once the reader has seen the end of the child's standard output.
    private func waitForEndOfOutput() {
        self.readerDone.wait()
        self.readerDone.signal()  // Later callers (deinit) pass straight through.
    }

    func stop() {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
    }

    deinit {
        self.stop()
        // The reader ends at EOF, once the child is gone; wait so that the pipe outlives its reads.
        self.waitForEndOfOutput()
    }
}

struct ProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension FileHandle {
    /// What can be read now without blocking on a child that is still running.
    var availableDataIfAny: Data {
        let flags = fcntl(self.fileDescriptor, F_GETFL)
        _ = fcntl(self.fileDescriptor, F_SETFL, flags | O_NONBLOCK)
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(self.fileDescriptor, &buffer, buffer.count)
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return data
    }
}

/// Runs a binary to completion and returns (status, stdout, stderr). One that runs past `limit` is
/// killed, so that a hung child fails its test instead of hanging the run.
func run(_ binary: String, _ arguments: [String], limit: Double = 120) throws -> (Int32, String, String) {
    try Child(executable: ServerProcess.binary(binary), arguments, limit: limit).finish()
}

/// ``run(_:_:limit:)`` for any executable.
func run(executable: URL, _ arguments: [String], limit: Double = 120) throws -> (Int32, String, String) {
    try Child(executable: executable, arguments, limit: limit).finish()
}

/// A child process with its standard output and error on pipes of their own, killed if it runs past
/// `limit` seconds. Its output is read with plain blocking reads.
final class Child {
    let process = Process()
    private let out = Pipe(), err = Pipe()
    private let watchdog: DispatchWorkItem
    private var outText = ""

    init(executable: URL, _ arguments: [String], limit: Double) throws {
        self.process.executableURL = executable
        self.process.arguments = arguments
        self.process.standardOutput = self.out
        self.process.standardError = self.err
        try self.process.run()
        let pid = self.process.processIdentifier
        self.watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: self.watchdog)
    }

    convenience init(_ binary: String, _ arguments: [String], limit: Double) throws {
        try self.init(executable: ServerProcess.binary(binary), arguments, limit: limit)
    }

    var pid: Int32 { self.process.processIdentifier }

    /// Reads standard output until it contains `text` or ends; returns what was read so far.
    func readOutput(untilContains text: String) -> String {
        while !self.outText.contains(text) {
            let data = self.out.fileHandleForReading.availableData
            if data.isEmpty { break }
            self.outText += String(decoding: data, as: UTF8.self)
        }
        return self.outText
    }

    /// Reads both pipes to their end, waits for the exit: (status, all of stdout, stderr).
    func finish() -> (Int32, String, String) {
        self.outText += String(decoding: self.out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: self.err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        self.process.waitUntilExit()
        self.watchdog.cancel()
        return (self.process.terminationStatus, self.outText, errors)
    }

    deinit {
        self.watchdog.cancel()
        if self.process.isRunning {
            kill(self.pid, SIGKILL)
            self.process.waitUntilExit()
        }
    }
}

/// One line handed from the pipe reader to the starting test (mutex + condition variable).
final class LineWaiter: @unchecked Sendable {  // Safe: guarded by `condition`.
    private let condition = NSCondition()
    private var line: String?

    func post(_ line: String) {
        self.condition.lock()
        if self.line == nil { self.line = line }
        self.condition.signal()
        self.condition.unlock()
    }

    func wait() -> String {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.line == nil { self.condition.wait() }
        return self.line!
    }
}
