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
            return try Self.parse(negativeValuesJoined(arguments))
        } catch {
            Self.exitLikeGo(for: error)
        }
    }

    /// Like ``parseLikeGo(_:)`` for a command with subcommands: returns the one chosen.
    public static func parseAsRootLikeGo(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> any ParsableCommand {
        do {
            return try Self.parseAsRoot(negativeValuesJoined(arguments))
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

/// `-duration -1` as `-duration=-1`: Go's flag package takes the word after a flag as its value even
/// when it starts with a dash, while argument parser reads `-1` as an unknown option and reports the
/// value as missing. Joined, the value reaches the option's own check, whose message names the range.
/// Only words that are numbers are joined, and only to an option written without `=`; no option's
/// name is a number, so nothing that was a flag before becomes a value.
func negativeValuesJoined(_ arguments: [String]) -> [String] {
    var joined: [String] = []
    joined.reserveCapacity(arguments.count)
    for argument in arguments {
        if let option = joined.last, option.hasPrefix("-"), option != "--", !option.contains("="),
           argument.hasPrefix("-"), Double(argument) != nil
        {
            joined[joined.count - 1] = option + "=" + argument
        } else {
            joined.append(argument)
        }
    }
    return joined
}

/// Stops the process with a one-line message on stderr and a non-zero status.
public func die(_ tool: String, _ message: String, status: Int32 = 1) -> Never {
    Output.error("\(tool): \(message)")
    exit(status)
}
