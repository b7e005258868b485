#if canImport(Glibc)
import Glibc
#endif

/// A growable run of bytes in one `malloc`'d block, for buffers that must not cost an allocation per use.
///
/// Deliberately not copy-on-write and not freed automatically: exactly one owner holds it and calls
/// ``free()`` when done (a copy of the struct aliases the same memory). An empty buffer owns no memory.
public struct RawBuffer {
    public private(set) var base: UnsafeMutableRawPointer?
    public private(set) var count = 0
    public private(set) var capacity = 0

    public init() {}

    public var isEmpty: Bool { self.count == 0 }

    /// The bytes held, lent for reading.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: self.base, count: self.count) }

    /// The bytes held, lent for changing in place.
    public var mutableBytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: self.base, count: self.count)
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        self.reserve(self.count + bytes.count)
        // Safe: reserve made room for count + bytes.count.
        (self.base! + self.count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        self.count += bytes.count
    }

    /// Grows by `count` bytes and lends the new tail for filling.
    public mutating func appendUninitialized(_ count: Int) -> UnsafeMutableRawBufferPointer {
        self.reserve(self.count + count)
        let tail = UnsafeMutableRawBufferPointer(start: self.base! + self.count, count: count)
        self.count += count
        return tail
    }

    @inline(__always)
    public mutating func reserve(_ needed: Int) {
        if needed > self.capacity { self.grow(to: needed) }
    }

    /// The slow path of ``reserve(_:)``, kept out of line: what every append runs is one comparison.
    @inline(never)
    mutating func grow(to needed: Int) {
        let newCapacity = max(needed, self.capacity * 2, 256)
        guard let grown = realloc(self.base, newCapacity) else {
            fatalError("out of memory growing a buffer to \(newCapacity) bytes")
        }
        self.base = grown
        self.capacity = newCapacity
    }

    /// Drops the first `count` bytes, moving the rest to the front.
    public mutating func removeFirst(_ count: Int) {
        precondition(count <= self.count)
        if count < self.count {
            self.base!.copyMemory(from: self.base! + count, byteCount: self.count - count)
        }
        self.count -= count
    }

    /// Drops the last `count` bytes.
    public mutating func removeLast(_ count: Int) {
        precondition(count <= self.count)
        self.count -= count
    }

    /// Empties the buffer but keeps its memory.
    public mutating func removeAll() { self.count = 0 }

    /// Empties the buffer and returns its memory.
    public mutating func free() {
        Glibc.free(self.base)
        self.base = nil
        self.count = 0
        self.capacity = 0
    }
}

@available(*, unavailable)
extension RawBuffer: Sendable {}
