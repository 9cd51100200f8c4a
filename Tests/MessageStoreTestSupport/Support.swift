import Foundation
package import Logging
import MessageStore

// What the unit, integration and CLI test targets share. `package`, not `public`: visible to
// this package's targets only, and this target is no product, so users never see it.

/// The tests' logger: silent unless `MESSAGE_STORE_TEST_LOG` names a level (`debug`, `trace`, …).
package let testLogger: Logger = {
    var logger = Logger(label: "message-store-tests")
    logger.logLevel =
        ProcessInfo.processInfo.environment["MESSAGE_STORE_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}()

/// The tests' everyday payload; its envelope type is `Counter`.
package struct Counter: MessagePayload, Equatable {
    package var value: Int

    package init(value: Int) {
        self.value = value
    }
}

/// A payload with two fields, as the Python package's examples have.
package struct OrderPlaced: MessagePayload, Equatable {
    package var orderId: String
    package var amount: Int

    package init(orderId: String, amount: Int) {
        self.orderId = orderId
        self.amount = amount
    }
}

/// A second payload of the same category.
package struct OrderCancelled: MessagePayload, Equatable {
    package var orderId: String

    package init(orderId: String) {
        self.orderId = orderId
    }
}

/// A payload whose envelope type is not its Swift name.
package struct RenamedEvent: MessagePayload, Equatable {
    package static let messageType = "legacy.renamed.v1"
    package var value: Double

    package init(value: Double) {
        self.value = value
    }
}

/// Measures how long `body` takes.
package func elapsed(_ body: () async throws -> Void) async rethrows -> Duration {
    let clock = ContinuousClock()
    let start = clock.now
    try await body()
    return clock.now - start
}
