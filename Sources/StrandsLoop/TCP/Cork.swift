/// A loop's cork: while one connection holds it (during its read callback, or inside `withCork`), the
/// bytes it writes collect here and leave in one write when it lets go.
///
/// Each loop keeps one, behind a pointer: protocol layers in other modules append frames to it on
/// every send, and an access through a pointer costs no dynamic exclusivity check, which a stored
/// property of the loop reached from another module would (about 200 instructions each). Loop-confined.
package struct Cork {
    /// What the owner wrote while holding the cork.
    package var buffer = RawBuffer()
    /// The connection holding the cork (its address: compared, never retained).
    package var owner: UnsafeMutableRawPointer?
    /// The owner's bytes in its write queue, not counting the cork's: kept current while it holds the
    /// cork, so that a frame can be checked against a send cap with one look at the cork.
    package var ownerQueued = 0
    /// The owner's high-water mark.
    package var ownerHighWater = 0
}
