/// The shared test support (binary locator, temp directories, SplitMix64, `testSeed`, the
/// fixtures and the crash workload) and the fault-injecting file system, for every file of this
/// target.
@_exported import ConfabFaultInjection
@_exported import ConfabTestSupport
