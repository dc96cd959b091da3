import ConfabEngine

/// The chat server's wall clock, in microseconds since the Unix epoch: message stamps, rate
/// limits, presence, typing, tokens. The chat layer's own protocol, so it says what it needs of
/// time rather than borrowing the engine's `EngineClock`; the engine's system and manual clocks
/// conform, so a test can drive both with one `ManualClock`.
public protocol ChatClock: Sendable {
    func nowMicros() -> Int64
    /// `nowMicros()` in whole seconds (the engine's clocks already have it).
    func nowSeconds() -> Int64
}

extension SystemClock: ChatClock {}
extension ManualClock: ChatClock {}
