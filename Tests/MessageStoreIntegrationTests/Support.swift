import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// A unique environment prefix per test, so tests can share nothing and run in parallel.
func uniquePrefix(_ base: String = "t") -> String {
    base + String(UUID().uuidString.prefix(8)).lowercased()
}

/// Starts a server, connects a store to it, runs `body`, and tears everything down.
func withStore<R>(
    createMissingStreams: Bool = true,
    configure: (inout MessageStore.Configuration) -> Void = { _ in },
    _ body: (MessageStore, NATSTestServer) async throws -> R
) async throws -> R {
    try await NATSTestServer.withServer { server in
        var connectionConfiguration = NATSConnection.Configuration(url: server.url)
        connectionConfiguration.reconnect.wait = .milliseconds(100)
        let connection = try await NATSConnection.connect(connectionConfiguration, logger: testLogger)
        var configuration = MessageStore.Configuration(
            prefix: uniquePrefix(),
            createMissingStreams: createMissingStreams
        )
        configure(&configuration)
        let store = try MessageStore(connection: connection, configuration: configuration, logger: testLogger)
        do {
            let result = try await body(store, server)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }
}

/// Runs `subscription` in a child task for the duration of `body`, then stops it and waits for
/// `run()` to return (bounded), so no test leaves a worker behind.
@discardableResult
func withRunning<R>(
    _ subscriptions: Subscription...,
    body: () async throws -> R
) async throws -> R {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for subscription in subscriptions {
            group.addTask { try await subscription.run() }
        }
        do {
            for subscription in subscriptions {
                await subscription.untilStarted()
            }
            let result = try await body()
            for subscription in subscriptions { subscription.stop() }
            try await group.waitForAll()
            return result
        } catch {
            for subscription in subscriptions { subscription.stop() }
            try? await group.waitForAll()
            throw error
        }
    }
}
