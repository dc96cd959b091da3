import Foundation

@testable import ConfabEngine
