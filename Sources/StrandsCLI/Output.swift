#if canImport(Glibc)
import Glibc
#endif

/// Line output for the tools: each line goes out in one `write(2)`, unbuffered, so a script or test
/// reading a pipe sees it at once (stdio would hold it in a 4 KiB buffer).
public enum Output {
    public static func line(_ text: String) { self.write(1, text + "\n") }
    public static func error(_ text: String) { self.write(2, text + "\n") }

    static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }
}
