/// When a write is acknowledged relative to fdatasync of the write-ahead log.
public enum SyncMode: Sendable, Hashable, CustomStringConvertible {
    /// Each write is fdatasynced before it is acknowledged.
    case batch
    /// Concurrent writers share one fdatasync; each is acknowledged after the sync that covers it.
    /// The default: as durable as `batch`, with far higher throughput under concurrency.
    case group
    /// Writes are acknowledged once written to the file (in the OS page cache) and fdatasynced every
    /// `milliseconds`: a process crash loses nothing acknowledged; a power loss can drop the last
    /// period, but what survives is always a prefix of the acknowledged writes.
    case periodic(milliseconds: Int)

    public var description: String {
        switch self {
        case .batch: return "batch"
        case .group: return "group"
        case .periodic(let ms): return "periodic(\(ms)ms)"
        }
    }

    /// Parses "batch", "group", "periodic" or "periodic:MS".
    public init?(parsing text: String) {
        switch text.lowercased() {
        case "batch": self = .batch
        case "group": self = .group
        case "periodic": self = .periodic(milliseconds: 10)
        default:
            let parts = text.lowercased().split(separator: ":")
            guard parts.count == 2, parts[0] == "periodic", let ms = Int(parts[1]), ms > 0 else { return nil }
            self = .periodic(milliseconds: ms)
        }
    }
}
