import ConfabEngine

/// The system clock shifted by a fixed offset: lets a test run chat servers whose clocks disagree
/// (`confab chat serve --clock-offset-ms`), which must change nothing about message order.
public struct OffsetClock: ChatClock {
    public let offsetMicros: Int64
    public init(offsetMicros: Int64) { self.offsetMicros = offsetMicros }
    public func nowMicros() -> Int64 { SystemClock().nowMicros() + offsetMicros }
    public func nowSeconds() -> Int64 { nowMicros() / 1_000_000 }
}
