/// A failure the chat server reports to a client: a stable machine-readable code (the `code` of
/// the JSON error object and of WebSocket `error` frames, docs/chat_protocol.md), the HTTP status it
/// maps to, and a message for people saying what happened and what to do.
public struct ChatError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Wrapped: String {
            case badRequest = "bad_request"
            case badFrame = "bad_frame"
            case unknownType = "unknown_type"
            case badHandle = "bad_handle"
            case badPassword = "bad_password"
            case handleTaken = "handle_taken"
            case badCredentials = "bad_credentials"
            case badToken = "bad_token"
            case tokenExpired = "token_expired"
            case unknownUser = "unknown_user"
            case unknownChat = "unknown_chat"
            case notAMember = "not_a_member"
            case notAGroup = "not_a_group"
            case blocked = "blocked"
            case groupFull = "group_full"
            case messageTooLong = "message_too_long"
            case clientIdReused = "client_id_reused"
            case rateLimited = "rate_limited"
            case notFound = "not_found"
            case storageUnavailable = "storage_unavailable"
            case wrongServer = "wrong_server"
            case serverFull = "server_full"
            case internalError = "internal"
        }
        fileprivate let wrapped: Wrapped

        /// The request is malformed (missing field, bad JSON, bad query parameter).
        public static let badRequest = Code(wrapped: .badRequest)
        /// A WebSocket frame is not a JSON object with a string `type`.
        public static let badFrame = Code(wrapped: .badFrame)
        /// A WebSocket frame's `type` is not one the server knows.
        public static let unknownType = Code(wrapped: .unknownType)
        /// The handle is not 3...32 of `[a-z0-9_]`.
        public static let badHandle = Code(wrapped: .badHandle)
        /// The password is not 8...256 characters.
        public static let badPassword = Code(wrapped: .badPassword)
        public static let handleTaken = Code(wrapped: .handleTaken)
        public static let badCredentials = Code(wrapped: .badCredentials)
        /// The token is missing, malformed or not signed by this deployment.
        public static let badToken = Code(wrapped: .badToken)
        public static let tokenExpired = Code(wrapped: .tokenExpired)
        public static let unknownUser = Code(wrapped: .unknownUser)
        public static let unknownChat = Code(wrapped: .unknownChat)
        public static let notAMember = Code(wrapped: .notAMember)
        /// Members can only be added to or removed from group chats.
        public static let notAGroup = Code(wrapped: .notAGroup)
        /// A group holds at most 100 members, its creator included.
        public static let groupFull = Code(wrapped: .groupFull)
        /// The user asked for has blocked the caller: they cannot be added to the caller's
        /// groups or get a new direct chat from the caller.
        public static let blocked = Code(wrapped: .blocked)
        /// More than 100,000 Unicode scalars; nothing was stored.
        public static let messageTooLong = Code(wrapped: .messageTooLong)
        /// A send reused a client id of an earlier message with different text; nothing was stored.
        /// Each message needs its own client id (the same one only for retries of that message).
        public static let clientIdReused = Code(wrapped: .clientIdReused)
        /// The user's send budget is spent; nothing was stored. Retry after a moment.
        public static let rateLimited = Code(wrapped: .rateLimited)
        public static let notFound = Code(wrapped: .notFound)
        /// The ring could not complete a QUORUM read or write; nothing is promised stored.
        public static let storageUnavailable = Code(wrapped: .storageUnavailable)
        /// The user belongs to another chat server (phase 2); reconnect to the address given.
        public static let wrongServer = Code(wrapped: .wrongServer)
        /// The server holds as many connections as its descriptor limit allows; retry later or
        /// on another server.
        public static let serverFull = Code(wrapped: .serverFull)
        public static let internalError = Code(wrapped: .internalError)

        fileprivate init(wrapped: Wrapped) { self.wrapped = wrapped }

        /// The code a client saw as `name` (nil for a name this server does not know).
        public init?(name: String) {
            guard let w = Wrapped(rawValue: name) else { return nil }
            self.wrapped = w
        }

        /// The string clients see.
        public var name: String { wrapped.rawValue }
        public var description: String { wrapped.rawValue }

        /// The HTTP status this error is answered with.
        public var httpStatus: Int {
            switch wrapped {
            case .badRequest, .badFrame, .unknownType, .badHandle, .badPassword: return 400
            case .badCredentials, .badToken, .tokenExpired: return 401
            case .notAMember, .blocked: return 403
            case .unknownUser, .unknownChat, .notFound: return 404
            case .handleTaken, .clientIdReused: return 409
            case .messageTooLong: return 413
            case .wrongServer: return 421
            case .groupFull, .notAGroup: return 422
            case .rateLimited: return 429
            case .internalError: return 500
            case .storageUnavailable, .serverFull: return 503
            }
        }
    }

    public var code: Code
    public var message: String
    /// For `rate_limited`: seconds until a retry can succeed (HTTP `Retry-After`).
    public var retryAfterSeconds: Int?

    public init(_ code: Code, _ message: String, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { "\(code.name): \(message)" }
}

extension ChatError {
    /// A chat the user is not in — or that does not exist: the same answer for both, so nobody
    /// learns which chats exist (1:1 chat ids are derived from the two handles, so "no such chat"
    /// versus "not yours" would tell anyone whether two people talk).
    static func notMember(of chatId: Int64) -> ChatError {
        ChatError(.notAMember, "you are not a member of chat \(chatId), or there is no such chat")
    }
}
