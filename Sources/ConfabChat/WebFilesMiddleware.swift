import Hummingbird

/// Serves the web client's files for every path outside `/api/` and `/ws`, so API requests never
/// touch the file system.
struct WebFilesMiddleware<Context: RequestContext>: RouterMiddleware {
    let files: FileMiddleware<Context, LocalFileSystem>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let path = request.uri.path
        if path.hasPrefix("/api/") || path == "/ws" { return try await next(request, context) }
        return try await files.handle(request, context: context, next: next)
    }
}
