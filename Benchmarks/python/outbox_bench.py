"""The outbox_relay scenario with the Python nats-outbox 0.1.0 package: its PollingRelay on the
same PostgreSQL and NATS servers as the Swift relay.

    outbox_bench.py --nats URL --database postgresql+asyncpg://... --prefix P --rows N --samples M

N rows committed (in transactions of 100 through outbox_transaction), then the relay started and
timed until the stream holds them all (throughput); then M single-row commits one at a time,
each timed from its commit's return to the message's arrival at a subscriber (commit-to-stored
latency). Prints one JSON object.
"""

import argparse
import asyncio
import json
import statistics
import time

import nats
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from nats_outbox.core.models import create_tables
from nats_outbox.core.outbox import outbox_transaction
from nats_outbox.publishers.nats_publisher import NatsPublisher
from nats_outbox.relay.polling import PollingRelay
from nats_outbox.settings import OutboxSettings


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()

    engine = create_async_engine(args.database, pool_size=4)
    await create_tables(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE outbox_events"))

    subject_prefix = f"{args.prefix}.outbox"
    nc = await nats.connect(args.nats)
    js = nc.jetstream()
    stream = f"{args.prefix}-outbox"
    await js.add_stream(name=stream, subjects=[f"{subject_prefix}.>"])

    for first in range(0, args.rows, 100):
        async with sessions() as session:
            async with outbox_transaction(session) as tx:
                for value in range(first, min(first + 100, args.rows)):
                    tx.publish_event(
                        subject=f"{subject_prefix}.{value % 50}",
                        payload={"type": "Counter", "data": {"value": value}},
                    )

    settings = OutboxSettings(database_url=args.database, nats_url=args.nats, batch_size=500)
    relay = PollingRelay(sessions, NatsPublisher(js), settings)
    started = time.perf_counter()
    task = asyncio.create_task(relay.start())
    while (await js.stream_info(stream)).state.messages < args.rows:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started

    # Latency: one commit at a time, to the message's arrival.
    arrived = asyncio.Queue()

    async def on_message(message):
        arrived.put_nowait(time.perf_counter())

    subscription = await nc.subscribe(f"{subject_prefix}.latency", cb=on_message)
    latencies = []
    for value in range(args.samples):
        async with sessions() as session:
            async with outbox_transaction(session) as tx:
                tx.publish_event(subject=f"{subject_prefix}.latency", payload={"type": "Counter", "data": {"value": value}})
        committed = time.perf_counter()
        latencies.append((await arrived.get()) - committed)
    await subscription.unsubscribe()
    await relay.stop()
    task.cancel()
    await nc.close()
    await engine.dispose()
    latencies.sort()
    print(
        json.dumps(
            {
                "rate": args.rows / elapsed,
                "p50_ms": statistics.median(latencies) * 1_000,
                "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1_000,
            }
        )
    )


asyncio.run(main())
