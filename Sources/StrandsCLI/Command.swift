import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

extension ParsableCommand {
    /// Parses the command line like the Go tools do: `--help` prints usage and exits 0, a bad flag or
    /// value prints the parser's message and usage hint on stderr and exits 2 (argument parser's
    /// default is 64).
    public static func parseLikeGo(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Self {
        do {
            return try Self.parse(arguments)
        } catch {
            Self.exitLikeGo(for: error)
        }
    }

    /// Like ``parseLikeGo(_:)`` for a command with subcommands: returns the one chosen.
    public static func parseAsRootLikeGo(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> any ParsableCommand {
        do {
            return try Self.parseAsRoot(arguments)
        } catch {
            Self.exitLikeGo(for: error)
        }
    }

    private static func exitLikeGo(for error: any Error) -> Never {
        if Self.exitCode(for: error) == .success {
            Output.line(Self.fullMessage(for: error))
            Glibc.exit(0)
        }
        Output.error("\(Self._commandName): \(Self.message(for: error))")
        Output.error("Run '\(Self._commandName) --help' for usage.")
        Glibc.exit(2)
    }

    static var _commandName: String { Self.configuration.commandName ?? String(describing: Self.self) }
}

/// Stops the process with a one-line message on stderr and a non-zero status.
public func die(_ tool: String, _ message: String, status: Int32 = 1) -> Never {
    Output.error("\(tool): \(message)")
    exit(status)
}
