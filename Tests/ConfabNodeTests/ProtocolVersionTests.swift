import Testing
import ConfabWire

@Suite struct ProtocolVersionTests {
    @Test func versionIsOne() { #expect(ProtocolVersion.current == 1) }
}
