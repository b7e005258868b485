import StrandsWS

#if canImport(Glibc)
import Glibc
#endif

// The echoserver executable arrives with its own issue; until then it says so instead of pretending to work.
let usage = """
    usage: echoserver [flags]
    echoserver is not built yet: this version of Strands ships the StrandsLoop event-loop layer only.

    """
_ = usage.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
exit(2)
