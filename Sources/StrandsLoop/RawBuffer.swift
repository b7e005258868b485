#if canImport(Glibc)
import Glibc
#endif

/// A growable run of bytes in one `malloc`'d block, for buffers that must not cost an allocation per use.
///
/// Deliberately not copy-on-write and not freed automatically: exactly one owner holds it and calls
/// ``free()`` when done (a copy of the struct aliases the same memory). An empty buffer owns no memory.
public struct RawBuffer {
    // Stored under internal names so that the few hot methods below can be inlined into other modules
    // (`@inlinable` code may touch only public or `@usableFromInline` declarations); the public view is
    // read-only.
    @usableFromInline var _base: UnsafeMutableRawPointer?
    @usableFromInline var _count = 0
    @usableFromInline var _capacity = 0

    public init() {}

    @inlinable public var base: UnsafeMutableRawPointer? { self._base }
    @inlinable public var count: Int { self._count }
    @inlinable public var capacity: Int { self._capacity }
    @inlinable public var isEmpty: Bool { self._count == 0 }

    /// The bytes held, lent for reading.
    @inlinable
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: self._base, count: self._count) }

    /// The bytes held, lent for changing in place.
    public var mutableBytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: self._base, count: self._count)
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        self.reserve(self._count + bytes.count)
        // Safe: reserve made room for count + bytes.count.
        (self._base! + self._count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        self._count += bytes.count
    }

    /// Grows by `count` bytes and lends the new tail for filling. Inlined where it is used: a frame
    /// appended to a cork costs a comparison and an addition here, not a call.
    @inlinable @inline(__always)
    public mutating func appendUninitialized(_ count: Int) -> UnsafeMutableRawBufferPointer {
        self.reserve(self._count + count)
        let tail = UnsafeMutableRawBufferPointer(start: self._base! + self._count, count: count)
        self._count += count
        return tail
    }

    @inlinable @inline(__always)
    public mutating func reserve(_ needed: Int) {
        if needed > self._capacity { self.grow(to: needed) }
    }

    /// The slow path of ``reserve(_:)``, kept out of line: what every append runs is one comparison.
    @usableFromInline @inline(never)
    mutating func grow(to needed: Int) {
        let newCapacity = max(needed, self._capacity * 2, 256)
        guard let grown = realloc(self._base, newCapacity) else {
            fatalError("out of memory growing a buffer to \(newCapacity) bytes")
        }
        self._base = grown
        self._capacity = newCapacity
    }

    /// Drops the first `count` bytes, moving the rest to the front.
    public mutating func removeFirst(_ count: Int) {
        precondition(count <= self._count)
        if count < self._count {
            self._base!.copyMemory(from: self._base! + count, byteCount: self._count - count)
        }
        self._count -= count
    }

    /// Drops the last `count` bytes.
    public mutating func removeLast(_ count: Int) {
        precondition(count <= self._count)
        self._count -= count
    }

    /// Empties the buffer but keeps its memory.
    public mutating func removeAll() { self._count = 0 }

    /// Empties the buffer and returns its memory.
    public mutating func free() {
        Glibc.free(self._base)
        self._base = nil
        self._count = 0
        self._capacity = 0
    }
}

@available(*, unavailable)
extension RawBuffer: Sendable {}
