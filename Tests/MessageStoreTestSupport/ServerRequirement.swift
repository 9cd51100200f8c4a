import Foundation
import MessageStoreTesting
package import Testing

/// Whether the tests that start a real `nats-server` can run here.
///
/// They are skipped, with the reason shown, when no server is found: `NATS_SERVER_BIN` is unset
/// and there is no `nats-server` on `PATH` or in `/usr/sbin` and `/usr/local/sbin`. A
/// `NATS_SERVER_BIN` that is set always runs them (a wrong one fails, naming the path).
/// `MESSAGE_STORE_REQUIRE_SERVER=1` (set by scripts/test.sh, so by CI) runs them even then, so a
/// missing server fails the run instead of passing it with everything skipped.
package enum NATSServerRequirement {
    package static let isRequired = ProcessInfo.processInfo.environment["MESSAGE_STORE_REQUIRE_SERVER"] == "1"

    package static let isFound: Bool = {
        if let configured = ProcessInfo.processInfo.environment["NATS_SERVER_BIN"], !configured.isEmpty { return true }
        return (try? NATSTestServer.defaultExecutable()) != nil
    }()

    package static var shouldRun: Bool { isRequired || isFound }
}

extension Trait where Self == ConditionTrait {
    /// Runs a suite or test only where a `nats-server` is found (see ``NATSServerRequirement``).
    package static var serverRequired: Self {
        .enabled(
            if: NATSServerRequirement.shouldRun,
            "needs nats-server: none found (set NATS_SERVER_BIN or install nats-server; MESSAGE_STORE_REQUIRE_SERVER=1 fails instead of skipping)"
        )
    }
}
