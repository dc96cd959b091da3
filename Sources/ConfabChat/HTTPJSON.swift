import Foundation
import Hummingbird
import NIOCore

/// JSON in and out of the HTTP API, with errors as `{"error":{"code","message"}}`.
enum HTTPJSON {
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONEncoder.chat.encode(value)) ?? Data("{}".utf8)
        return raw(data, status: status)
    }

    static func raw(_ data: Data, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ e: ChatError) -> Response {
        ChatMetrics.shared.error(e.code)
        struct Body: Encodable {
            struct Inner: Encodable {
                var code: String
                var message: String
            }
            var error: Inner
        }
        var answer = response(
            Body(error: .init(code: e.code.name, message: e.message)), status: .init(code: e.code.httpStatus))
        if let seconds = e.retryAfterSeconds { answer.headers[.retryAfter] = String(seconds) }
        return answer
    }

    /// Decodes the request body (at most `limit` bytes) as `T`, or `bad_request` saying what is wrong.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int = 1 << 20) async throws -> T {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch {
            throw ChatError(.badRequest, "the request body is larger than \(limit) bytes")
        }
        do {
            return try JSONDecoder.chat.decode(T.self, from: Data(buffer: buffer))
        } catch DecodingError.keyNotFound(let key, _) {
            throw ChatError(.badRequest, "the JSON body needs \"\(key.stringValue)\"")
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ChatError(.badRequest, "\"\(path)\" has the wrong type")
        } catch {
            throw ChatError(.badRequest, "the body is not the JSON object this endpoint takes (docs/chat_protocol.md)")
        }
    }
}

/// Turns errors thrown by handlers into the API's JSON error bodies.
struct ChatErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let e as ChatError {
            return HTTPJSON.error(e)
        } catch let e as HTTPError {
            guard request.uri.path.hasPrefix("/api") else { throw e }
            switch e.status {
            case .notFound:
                return HTTPJSON.error(ChatError(.notFound, "no such endpoint: \(request.method) \(request.uri.path)"))
            case .methodNotAllowed:
                return HTTPJSON.error(ChatError(.notFound, "\(request.method) is not allowed on \(request.uri.path)"))
            default: return HTTPJSON.error(ChatError(.badRequest, e.body ?? "bad request"))
            }
        }
    }
}
