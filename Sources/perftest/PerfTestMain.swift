import Foundation
import StrandsCLI
import StrandsWS

/// What `run` and `suite` do, off the main actor (their closures run on loops and Dispatch queues).
enum PerfTestMain {
    /// One run with the Go tool's banner, live line and results block.
    static func single(_ command: RunCommand) {
        if command.procs > 1 { Self.processes(command) }
        let load = command.load
        let group = Self.makeGroup(workers: load.workers, clients: command.clients)
        let options = load.runOptions(clients: command.clients, duration: command.duration, mode: command.mode, rate: command.rate,
                                      connectRate: command.connectRate, totalClients: command.totalClients,
                                      clientOffset: command.clientOffset)
        Interrupt.install()  // Before the banner: whoever reads it may signal at once.
        Output.line("PyStrands WebSocket performance test (Strands perftest)")
        Output.line("Target: \(options.url)  Mode: \(options.mode.rawValue)  Clients: \(options.clients)  "
            + "Duration: \(fixed(options.duration, 1))s  Payload: \(options.payload) bytes\(options.data == .x ? "" : " (\(options.data.rawValue))")  Ramp-up: \(load.rampup)ms  "
            + "Loops: \(group.loops.count)" + (options.rate.map { "  Rate: \(Int($0.rounded())) msg/s" } ?? ""))
        let result = Runner.run(options, group: group, live: true)
        group.shutdown()
        let report = Report(result)
        let passed = Self.deliver(report, thresholds: command.thresholds, json: load.json, html: command.report)
        if let signal = result.interruptedBy { exit(128 + signal) }
        if !passed { exit(Threshold.exitCode) }
        if result.stats.connected == 0 { exit(1) }
        exit(0)
    }

    /// Prints `report` with the thresholds' verdicts, writes it as `json` and `html` if asked; returns
    /// whether every threshold passed.
    static func deliver(_ report: Report, thresholds: ThresholdOptions, json: String?, html: String?) -> Bool {
        report.printText()
        let passed = Threshold.report((try? thresholds.parsed()) ?? [], for: report)
        if let path = json {
            do { try report.writeJSON(to: path) } catch { die("perftest", "cannot write \(path): \(error)") }
        }
        if let path = html {
            do { try HTMLReport.write(report, to: path) } catch { die("perftest", "cannot write \(path): \(error)") }
        }
        return passed
    }

    /// `-procs N`: N perftest processes, each with its share of the clients (and of `-rate`) and of the
    /// CPUs, their -json results merged as `perftest merge` does. SIGINT and SIGTERM are passed on.
    static func processes(_ command: RunCommand) -> Never {
        Interrupt.install()
        let count = command.procs
        let arguments = Array(CommandLine.arguments.dropFirst())
        // The processes' results, in a directory of this run's own (mkdtemp: no name another user can take first).
        var template = Array("\(FileManager.default.temporaryDirectory.path)/perftest-procs-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { die("perftest", "-procs: cannot make a directory for the results") }
        let directory = String(cString: made)
        var kept = Spawn.arguments(arguments, without: ["procs", "json", "report", "threshold", "clients", "rate", "connect-rate",
                                                        "client-offset", "total-clients"])
        if arguments.first == "run" { kept.removeFirst() }
        let workers = command.load.workers == 0 ? max(1, System.availableCPUs / count) : command.load.workers
        if command.load.workers == 0 { kept += ["-workers", "\(workers)"] }
        Output.line("PyStrands WebSocket performance test (Strands perftest): \(command.clients) clients over \(count) processes "
            + "of \(workers) loop\(workers == 1 ? "" : "s") each" + (command.rate.map { ", \(Int($0.rounded())) msg/s in all" } ?? ""))
        var children: [(pid: pid_t, file: String)] = []
        for index in 0..<count {
            let clients = command.clients / count + (index < command.clients % count ? 1 : 0)
            let file = "\(directory)/\(index).json"
            let offset = (0..<index).reduce(0) { $0 + command.clients / count + ($1 < command.clients % count ? 1 : 0) }
            var child = ["run"] + kept + ["-clients", "\(clients)", "-json", file, "-client-offset", "\(offset)",
                                         "-total-clients", "\(command.clients)"]
            if let rate = command.rate { child += ["-rate", "\(rate * Double(clients) / Double(command.clients))"] }
            if let rate = command.connectRate { child += ["-connect-rate", "\(rate * Double(clients) / Double(command.clients))"] }
            do {
                children.append((try Spawn.start(executable: Spawn.executablePath, arguments: child, discardOutput: true), file))
            } catch {
                for started in children { kill(started.pid, SIGTERM) }
                die("perftest", "-procs: cannot start a process: \(error)")
            }
        }
        // Wait for all, passing a stop request on once.
        var statuses: [Int32] = Array(repeating: -1, count: count)
        var passedOn = false
        while statuses.contains(-1) {
            for (index, child) in children.enumerated() where statuses[index] == -1 {
                var status: Int32 = 0
                if waitpid(child.pid, &status, WNOHANG) == child.pid { statuses[index] = status }
            }
            if let signal = Interrupt.signal, !passedOn {
                passedOn = true
                for (index, child) in children.enumerated() where statuses[index] == -1 { kill(child.pid, signal) }
            }
            _ = Interrupt.sleep(until: Clock.nanoseconds() + 20_000_000)
            if Interrupt.signal != nil { usleep(20_000) }
        }
        var reports: [Report] = []
        for (index, child) in children.enumerated() {
            do {
                reports.append(try Report.read(from: child.file))
            } catch {
                Output.error("perftest: -procs: process \(index + 1) of \(count) left no result (exit status \(statuses[index])): \(error)")
            }
            unlink(child.file)
        }
        rmdir(directory)
        guard !reports.isEmpty else { die("perftest", "-procs: no process left a result") }
        let merged: Report
        do {
            merged = try Report.merged(reports, files: children.map(\.file))
        } catch {
            die("perftest", "-procs: \(error)")
        }
        let passed = Self.deliver(merged, thresholds: command.thresholds, json: command.load.json, html: command.report)
        if let signal = Interrupt.signal { exit(128 + signal) }
        if reports.count < count { exit(1) }
        if !passed { exit(Threshold.exitCode) }
        if merged.stats.connected == 0 { exit(1) }
        exit(0)
    }

    /// `perftest merge`: the runs' results as one, printed (and written with `-json`).
    static func merge(_ command: MergeCommand) {
        var reports: [Report] = []
        for file in command.files {
            do {
                reports.append(try Report.read(from: file))
            } catch {
                Output.error("perftest: \(file): \(error)")
                exit(2)
            }
        }
        let merged: Report
        do {
            merged = try Report.merged(reports, files: command.files)
        } catch {
            Output.error("perftest: merge: \(error)")
            exit(2)
        }
        Output.line("PyStrands WebSocket performance test (Strands perftest): \(reports.count) runs merged")
        let passed = Self.deliver(merged, thresholds: command.thresholds, json: command.json, html: command.report)
        exit(passed ? 0 : Threshold.exitCode)
    }

    /// A loop group sized for the job, after making sure there are descriptors for every client.
    static func makeGroup(workers: Int, clients: Int) -> LoopGroup {
        Self.ensureOpenFiles(clients: clients)
        do {
            return try LoopGroup(loopCount: workers == 0 ? System.availableCPUs : workers)
        } catch {
            die("perftest", "cannot start event loops: \(error)")
        }
    }

    /// Raises the open-file limit, or stops with what to do when even the hard limit is too low.
    static func ensureOpenFiles(clients: Int) {
        let limit = (try? System.raiseOpenFileLimit()) ?? 0
        // Each client is one socket; leave room for the loops' own descriptors and stdio.
        let needed = clients + 64
        if limit > 0 && limit < needed {
            die("perftest", "\(clients) clients need about \(needed) open files, but this process may open \(limit) "
                + "(the hard limit). Raise it (ulimit -Hn, /etc/security/limits.conf) or run fewer -clients, or "
                + "spread the clients over several perftest processes.")
        }
    }
}
