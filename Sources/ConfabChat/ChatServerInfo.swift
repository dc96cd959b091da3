import Foundation

/// Where the web client's files live: copied into the module's resource bundle at build time.
enum WebClientFiles {
    static var directory: URL? { Bundle.module.url(forResource: "Web", withExtension: nil) }
}
