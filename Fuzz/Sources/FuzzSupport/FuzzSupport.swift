// What every fuzz target shares: running libFuzzer's driver, and failing on a broken invariant
// with the input in words.

import Foundation
import FuzzDriver

/// Runs libFuzzer on `callback` with the process's arguments (libFuzzer's flags, corpus
/// directories or an input to replay) and exits with its status.
public func runFuzzer(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
}

/// Stops the run on an input that broke an invariant; libFuzzer keeps the input as a crash.
public func fail(_ message: String, _ body: [UInt8]) -> Never {
    fatalError("invariant broken: \(message); input: \(String(decoding: body, as: UTF8.self).debugDescription)")
}
