import Foundation
import StrandsCLI
import StrandsWS

/// What `run` and `suite` do, off the main actor (their closures run on loops and Dispatch queues).
enum PerfTestMain {
    /// One run with the Go tool's banner, live line and results block.
    static func single(_ command: RunCommand) {
        let load = command.load
        let group = Self.makeGroup(workers: load.workers, clients: command.clients)
        let options = load.runOptions(clients: command.clients, duration: command.duration, mode: command.mode, rate: command.rate)
        Interrupt.install()  // Before the banner: whoever reads it may signal at once.
        Output.line("PyStrands WebSocket performance test (Strands perftest)")
        Output.line("Target: \(options.url)  Mode: \(options.mode.rawValue)  Clients: \(options.clients)  "
            + "Duration: \(fixed(options.duration, 1))s  Payload: \(options.payload) bytes\(options.data == .x ? "" : " (\(options.data.rawValue))")  Ramp-up: \(load.rampup)ms  "
            + "Loops: \(group.loops.count)" + (options.rate.map { "  Rate: \(Int($0.rounded())) msg/s" } ?? ""))
        let result = Runner.run(options, group: group, live: true)
        group.shutdown()
        let report = Report(result)
        report.printText()
        let passed = Threshold.report((try? command.thresholds.parsed()) ?? [], for: report)
        if let path = load.json {
            do { try report.writeJSON(to: path) } catch { die("perftest", "cannot write \(path): \(error)") }
        }
        if let path = command.report {
            do { try HTMLReport.write(report, to: path) } catch { die("perftest", "cannot write \(path): \(error)") }
        }
        if let signal = result.interruptedBy { exit(128 + signal) }
        if !passed { exit(Threshold.exitCode) }
        if result.stats.connected == 0 { exit(1) }
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
        merged.printText()
        let passed = Threshold.report((try? command.thresholds.parsed()) ?? [], for: merged)
        if let path = command.json {
            do { try merged.writeJSON(to: path) } catch { die("perftest", "cannot write \(path): \(error)") }
        }
        if let path = command.report {
            do { try HTMLReport.write(merged, to: path) } catch { die("perftest", "cannot write \(path): \(error)") }
        }
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
