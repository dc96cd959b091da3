import ConfabEngine
import ConfabRing
import ConfabWire
import NIOCore

/// What carries out a client's reads and writes once the request is decoded and validated: the
/// seam between the connection handling and the data. `ReplicatedRequestProcessor` implements it by
/// fanning each request out to the partition's replicas.
///
/// Implementations throw `WireError` for failures the client should see as such (`unavailable`,
/// `timeout`, `overloaded`, `invalid`); any other error is reported as a `server` error (a
/// `StorageError` keeps its meaning, see `RequestHandler`).
public protocol RequestProcessor: Sendable {
    /// Applies `mutation` and returns once at least `consistency.blockFor(rf)` replicas hold it
    /// durably (per their sync mode). Mutations carry their own cell timestamps, so a retried write
    /// is idempotent.
    func write(_ mutation: Mutation, consistency: ConsistencyLevel) async throws -> WriteAck

    /// Reads the slice with the guarantees of `consistency`. With `digestOnly`, answers
    /// `.digest` of the rows it would have returned.
    func read(_ query: SliceQuery, consistency: ConsistencyLevel, digestOnly: Bool) async throws -> ReadResponse

    /// This node's view of the ring, for `confab ring status`.
    func status() async throws -> RingStatus

    /// `write` for a request served on `loop`: starts at once on the calling thread and calls
    /// `done` exactly once, from any thread. The default runs the async form in a task.
    func write(
        _ mutation: Mutation, consistency: ConsistencyLevel, on loop: any EventLoop,
        _ done: @escaping @Sendable (Result<WriteAck, any Error>) -> Void)

    /// `read` for a request served on `loop`, like the callback `write`.
    func read(
        _ query: SliceQuery, consistency: ConsistencyLevel, digestOnly: Bool, on loop: any EventLoop,
        _ done: @escaping @Sendable (Result<ReadResponse, any Error>) -> Void)

    /// The callback `write` of a mutation whose table the caller has already resolved (the
    /// request handler, from the request's keyspace and table names): a request's schema is
    /// looked up once. The default ignores `table`.
    func write(
        _ mutation: Mutation, table: TableSchema, consistency: ConsistencyLevel, on loop: any EventLoop,
        _ done: @escaping @Sendable (Result<WriteAck, any Error>) -> Void)

    /// The callback `read` of a query whose table the caller has already resolved.
    func read(
        _ query: SliceQuery, table: TableSchema, consistency: ConsistencyLevel, digestOnly: Bool,
        on loop: any EventLoop, _ done: @escaping @Sendable (Result<ReadResponse, any Error>) -> Void)
}

extension RequestProcessor {
    public func write(
        _ mutation: Mutation, table: TableSchema, consistency: ConsistencyLevel, on loop: any EventLoop,
        _ done: @escaping @Sendable (Result<WriteAck, any Error>) -> Void
    ) {
        write(mutation, consistency: consistency, on: loop, done)
    }

    public func read(
        _ query: SliceQuery, table: TableSchema, consistency: ConsistencyLevel, digestOnly: Bool,
        on loop: any EventLoop, _ done: @escaping @Sendable (Result<ReadResponse, any Error>) -> Void
    ) {
        read(query, consistency: consistency, digestOnly: digestOnly, on: loop, done)
    }

    public func write(
        _ mutation: Mutation, consistency: ConsistencyLevel, on loop: any EventLoop,
        _ done: @escaping @Sendable (Result<WriteAck, any Error>) -> Void
    ) {
        Task {
            do { done(.success(try await write(mutation, consistency: consistency))) } catch { done(.failure(error)) }
        }
    }

    public func read(
        _ query: SliceQuery, consistency: ConsistencyLevel, digestOnly: Bool, on loop: any EventLoop,
        _ done: @escaping @Sendable (Result<ReadResponse, any Error>) -> Void
    ) {
        Task {
            do {
                done(.success(try await read(query, consistency: consistency, digestOnly: digestOnly)))
            } catch {
                done(.failure(error))
            }
        }
    }
}
