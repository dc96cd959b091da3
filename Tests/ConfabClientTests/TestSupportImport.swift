/// The shared test support (binary locator, temp directories, SplitMix64, `testSeed`, fixtures)
/// for every file of this target.
@_exported import ConfabTestSupport
