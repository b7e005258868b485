#if canImport(Glibc)
import Glibc
#endif

/// Child processes of the tools' own (`echoserver -procs`, `perftest -procs`): started with
/// `posix_spawn`, no shell, the caller's environment.
public enum Spawn {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// This executable's path (`/proc/self/exe` resolved), to start more of the same.
    public static var executablePath: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `arguments` without the options `names` (written `-name value`, `--name value`, `-name=value` or
    /// `--name=value`): what a tool passes on to processes of its own that get those options their way.
    public static func arguments(_ arguments: [String], without names: [String]) -> [String] {
        var kept: [String] = []
        var skipValue = false
        for argument in arguments {
            if skipValue {
                skipValue = false
                continue
            }
            let flag = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if names.contains(where: { flag == "-" + $0 || flag == "--" + $0 }) {
                skipValue = !argument.contains("=")
                continue
            }
            kept.append(argument)
        }
        return kept
    }

    /// Starts `executable` with `arguments`; with `discardOutput`, its standard output goes to
    /// /dev/null (its standard error stays the caller's). Returns its pid.
    public static func start(executable: String, arguments: [String], discardOutput: Bool = false) throws(Failure) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if discardOutput { posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard status == 0 else { throw Failure(description: "\(executable): \(String(cString: strerror(status)))") }
        return pid
    }
}
