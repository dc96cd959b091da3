/// The shared test support (binary locator, temp directories, SplitMix64, `testSeed`) for
/// every file of this target.
@_exported import ConfabTestSupport
