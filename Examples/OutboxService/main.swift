// OutboxService: exactly-once effects with PostgreSQL.
//
//   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres swift run OutboxService
//
// A shop writes each order row and its OrderPlaced event in one transaction (the event staged
// in the outbox); one order's transaction rolls back, and its event is never published. An
// outbox relay publishes what committed; a billing worker charges each order through an inbox,
// writing the charge and the inbox record in one transaction. A second billing worker of the
// same inbox then reads the same events and charges nothing: each charge happens once. The
// connection to PostgreSQL comes from PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE.

import ExampleSupport
import Foundation
import Logging
import MessageStore
import MessageStorePostgres
import PostgresNIO
import ServiceLifecycle
import Synchronization

struct OrderPlaced: MessagePayload {
    var orderId: String
    var total: Int
}

let environment = ProcessInfo.processInfo.environment
let host = environment["PGHOST"] ?? "127.0.0.1"
let port = environment["PGPORT"].flatMap { Int($0) } ?? 5432
let user = environment["PGUSER"] ?? "postgres"
let password = environment["PGPASSWORD"]
let databaseName = environment["PGDATABASE"] ?? "postgres"

try await runExample("OutboxService") { store in
    // Made here, after runExample set up logging (errors only, on stderr, unless LOG_LEVEL says).
    let logger = Logger(label: "outbox-service")
    let database = PostgresConnection.Configuration(
        host: host,
        port: port,
        username: user,
        password: password,
        database: databaseName,
        tls: .disable
    )
    let connection: PostgresConnection
    do {
        connection = try await PostgresConnection.connect(configuration: database, id: 1, logger: logger)
    } catch {
        say(
            "OutboxService: cannot reach PostgreSQL at \(host):\(port) as \(user): set PGHOST, PGPORT, PGUSER, PGPASSWORD"
        )
        return
    }
    let outbox = Outbox()
    let inbox = Inbox(name: "billing")
    try await outbox.migrate(on: connection, logger: logger)
    try await inbox.migrate(on: connection, logger: logger)
    try await connection.query(
        "CREATE TABLE IF NOT EXISTS demo_orders (id text PRIMARY KEY, total integer NOT NULL)",
        logger: logger
    )
    try await connection.query("CREATE TABLE IF NOT EXISTS demo_charges (order_id text NOT NULL)", logger: logger)
    try await store.ensureStream("shop")
    let run = UUID().uuidString.prefix(4).lowercased()

    // The shop: an order row and its event in one transaction.
    struct CardDeclined: Error {}
    let orders = [("\(run)-1", 30), ("\(run)-2", 12), ("\(run)-3", 99), ("\(run)-4", 5)]
    for (id, total) in orders {
        do {
            try await connection.withTransaction(logger: logger) { transaction in
                try await transaction.query(
                    "INSERT INTO demo_orders (id, total) VALUES (\(id), \(total))",
                    logger: logger
                )
                try await outbox.stage(
                    OrderPlaced(orderId: id, total: total),
                    to: "shop.order.\(id)",
                    id: "order-placed-\(id)",
                    on: transaction,
                    logger: logger
                )
                if id.hasSuffix("-4") { throw CardDeclined() }
            }
            say("shop:    order \(id) (\(total) €) committed with its event staged")
        } catch {
            say("shop:    order \(id) rolled back (card declined): its staged event goes with it")
        }
    }

    let client = PostgresClient(
        configuration: PostgresClient.Configuration(
            host: host,
            port: port,
            username: user,
            password: password,
            database: databaseName,
            tls: .disable
        )
    )
    let charged = Mutex<[String: Int]>([:])
    func billing(_ consumer: String) throws -> Subscription {
        try store.subscription(
            to: "shop.order.>",
            consumer: consumer,
            handlers: MessageHandlers().handling(
                OrderPlaced.self,
                inbox.once(in: client, logger: logger) { message, transaction in
                    try await transaction.query(
                        "INSERT INTO demo_charges (order_id) VALUES (\(message.data.orderId))",
                        logger: logger
                    )
                    charged.withLock { $0[consumer, default: 0] += 1 }
                    say("\(consumer): charged order \(message.data.orderId) (\(message.data.total) €)")
                }
            )
        )
    }
    let relay = OutboxRelay(outbox: outbox, store: store, database: database, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        group.addTask { try await relay.run() }
        // The relay publishes what committed: three events.
        while try await store.stream(for: "shop.>")?.messages ?? 0 < 3 {
            try await Task.sleep(for: .milliseconds(20))
        }
        say("relay:   3 events published; the rolled-back order's never was")
        for consumer in ["billing", "billing-replay"] {
            let worker = try billing(consumer)
            group.addTask { try await worker.run() }
            // Until this worker has settled the three events.
            while try await store.consumers(of: "shop").first(where: { $0.name == consumer }).map({
                $0.pending > 0 || $0.ackPending > 0
            }) ?? true {
                try await Task.sleep(for: .milliseconds(20))
            }
            worker.stop()
        }
        let counts = charged.withLock { $0 }
        say("billing-replay: \(counts["billing-replay", default: 0]) charge(s): every event was in the inbox already")
        group.cancelAll()
    }
    let rows = try await connection.query(
        "SELECT order_id, count(*) FROM demo_charges WHERE order_id LIKE \(run + "-%") GROUP BY order_id ORDER BY order_id",
        logger: logger
    )
    for try await (order, count) in rows.decode((String, Int64).self) {
        say("charges: order \(order) charged \(count) time(s)")
    }
    try await connection.close()
    if let stream = try await store.stream(for: "shop.>") {
        try await store.deleteStream(named: stream.name)
    }
}
