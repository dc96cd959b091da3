import ConfabProcess
import Testing

/// `confab ring start`'s default event-loop threads per node: the machine's cores split among the
/// nodes, at least one each; a lone node keeps its own default (one per core).
@Suite struct CoreShareTests {
    @Test func nodesSplitTheCores() {
        #expect(CoreShare.eventLoopThreads(nodes: 3, cores: 2) == 1)
        #expect(CoreShare.eventLoopThreads(nodes: 2, cores: 2) == 1)
        #expect(CoreShare.eventLoopThreads(nodes: 3, cores: 8) == 2)
        #expect(CoreShare.eventLoopThreads(nodes: 64, cores: 16) == 1)
        #expect(CoreShare.eventLoopThreads(nodes: 1, cores: 8) == nil)
    }
}
