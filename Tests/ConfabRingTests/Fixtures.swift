import ConfabRing

/// Helpers shared by the ring tests.
enum Fixtures {
    static func node(_ i: Int) -> NodeID {
        NodeID(id: "node-\(i)", host: "127.0.0.1", port: 7000 + i)
    }

    static func seconds(_ s: Double) -> RingInstant {
        RingInstant(nanoseconds: Int64(s * 1e9))
    }
}
