import Foundation

/// The Prometheus client libraries' standard process metrics (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_start_time_seconds`), read from /proc at each scrape and appended to `/metrics`.
///
/// Why: the nodes and chat servers share machines with each other in the local rings and
/// benchmarks, and the CPU a process spends per request is the figure that tells a busy machine
/// from a slow disk (the ring benchmark divides this counter by the writes of a phase). It is read
/// when scraped, so it costs nothing between scrapes. On a system without /proc the lines are left
/// out rather than made up.
enum ProcessMetrics {
    /// The exposition lines, each family with its HELP and TYPE; empty without /proc.
    static func exposition() -> [UInt8] {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return [] }
        // Fields after "(comm)", counted from 3 (state): utime 14, stime 15, starttime 22, rss 24.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 21, let utime = Double(fields[11]), let stime = Double(fields[12]),
            let startTicks = Double(fields[19]), let rssPages = Double(fields[21])
        else { return [] }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ value: Double) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(format(value))\n"
        }
        family(
            "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
            (utime + stime) / ticks)
        family(
            "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
            rssPages * Double(sysconf(Int32(_SC_PAGESIZE))))
        if let boot = bootTimeSeconds() {
            family(
                "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                boot + startTicks / ticks)
        }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            // The listing itself holds one descriptor while it runs.
            family("process_open_fds", "gauge", "Number of open file descriptors.", Double(max(0, fds.count - 1)))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            family("process_max_fds", "gauge", "Maximum number of open file descriptors.", Double(limit.rlim_cur))
        }
        return Array(out.utf8)
    }

    /// The `btime` line of /proc/stat: boot time, seconds since the epoch.
    private static func bootTimeSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    private static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
