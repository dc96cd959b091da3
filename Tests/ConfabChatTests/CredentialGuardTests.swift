import ConfabEngine
import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import ConfabChat

/// Login and sign-up limits (issue 12: "/api/login and /api/register have no rate limit, and each
/// runs PBKDF2 on a shared pool"). Each check here was seen failing with the limits removed.
@Suite struct CredentialGuardTests {
    static let limits = CredentialGuard.Limits(
        perAddressPerSecond: 1, perAddressBurst: 30,
        perHandlePerSecond: 0.1, perHandleBurst: 10, maxHashesInFlight: 2)

    static func code(_ body: () async throws -> Void) async -> (ChatError.Code?, Int?) {
        do {
            try await body()
            return (nil, nil)
        } catch let e as ChatError { return (e.code, e.retryAfterSeconds) } catch { return (.internalError, nil) }
    }

    @Test func guessingOneHandleIsSlowedFromAnyAddress() async {
        let clock = ManualClock()
        let guardian = CredentialGuard(limits: Self.limits, clock: clock)
        for i in 0..<10 {
            #expect(
                await Self.code { _ = try await guardian.admit(address: "10.0.0.\(i)", handle: "alice") { 1 } }.0 == nil
            )
        }
        let refused = await Self.code { _ = try await guardian.admit(address: "10.0.1.1", handle: "ALICE") { 1 } }
        #expect(refused.0 == .rateLimited && refused.1 == 10, "\(refused)")
        // Other users are not affected, and the handle's bucket refills with time.
        #expect(await Self.code { _ = try await guardian.admit(address: "10.0.1.1", handle: "bob") { 1 } }.0 == nil)
        clock.advance(seconds: 10)
        #expect(await Self.code { _ = try await guardian.admit(address: "10.0.1.2", handle: "alice") { 1 } }.0 == nil)
    }

    @Test func oneAddressCannotFloodTheServer() async {
        let clock = ManualClock()
        let guardian = CredentialGuard(limits: Self.limits, clock: clock)
        for i in 0..<30 {
            #expect(
                await Self.code { _ = try await guardian.admit(address: "10.0.0.1", handle: "user\(i)") { 1 } }.0 == nil
            )
        }
        let refused = await Self.code { _ = try await guardian.admit(address: "10.0.0.1", handle: "fresh") { 1 } }
        #expect(refused.0 == .rateLimited && refused.1 == 1, "\(refused)")
        #expect(await Self.code { _ = try await guardian.admit(address: "10.0.0.2", handle: "fresh") { 1 } }.0 == nil)
    }

    @Test func hashesInFlightAreBounded() async throws {
        let guardian = CredentialGuard(limits: Self.limits, clock: ManualClock())
        let gates = (0..<2).map { _ in AsyncStream.makeStream(of: Void.self) }
        let entered = NIOLockedValueBox(0)
        let holders = (0..<2).map { i in
            Task {
                try await guardian.admit(address: "10.0.0.\(i)", handle: "h\(i)") {
                    entered.withLockedValue { $0 += 1 }
                    for await _ in gates[i].stream { break }
                    return i
                }
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while entered.withLockedValue({ $0 }) < 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(entered.withLockedValue { $0 } == 2)
        let busy = await Self.code { _ = try await guardian.admit(address: "10.0.0.9", handle: "h9") { 1 } }
        #expect(busy.0 == .rateLimited && busy.1 == 1, "\(busy)")
        for g in gates { g.continuation.finish() }
        for h in holders { _ = try await h.value }
        #expect(await Self.code { _ = try await guardian.admit(address: "10.0.0.9", handle: "h9") { 1 } }.0 == nil)
    }

    @Test func aLoginFloodIsLimitedAndOthersAreServed() async throws {
        let stack = try await ChatStack.start()
        _ = try await stack.register("victim")
        var answers: [Int] = []
        for i in 0..<12 {
            answers.append(
                try await stack.http(.post, "/api/login", body: ["handle": "victim", "password": "guess-\(i)-nope"])
                    .status)
        }
        // The sign-up spent one attempt of the handle's 10: nine wrong guesses, then 429.
        #expect(
            answers.prefix(9).allSatisfy { $0 == 401 } && answers.dropFirst(9).allSatisfy { $0 == 429 }, "\(answers)")
        let limited = try await stack.http(
            .post, "/api/login", body: ["handle": "victim", "password": "password-victim"])
        #expect(
            limited.status == 429 && limited.errorCode == "rate_limited"
                && limited.retryAfter.flatMap(Int.init).map { $0 >= 1 } == true,
            "\(limited.status) \(limited.text) Retry-After: \(limited.retryAfter ?? "none")")
        // Someone else signs up and logs in from the same address meanwhile.
        _ = try await stack.register("bystander")
        #expect(
            try await stack.http(.post, "/api/login", body: ["handle": "bystander", "password": "password-bystander"])
                .status == 200)
        try await stack.stop()
    }
}
