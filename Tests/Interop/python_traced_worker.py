"""Runs a message-store worker through message-store-open-telemetry 0.2.0 until its handler has
handled one OrderPlaced, and prints the spans.

Usage: python_traced_worker.py NATS_URL PREFIX FILTER CONSUMER
Prints {"spans": [...]}: the CONSUMER span (and queue_wait) of the handled message.
"""
import asyncio
import json
import sys

import tracing  # sets up the OpenTelemetry SDK first

import nats
from message_store import MessageStore
from message_store_open_telemetry import get_message_store_with_open_telemetry


async def main(url, prefix, filter_subject, consumer):
    client = await nats.connect(url)
    handled = asyncio.Event()

    async def handle(message):
        handled.set()

    try:
        store = get_message_store_with_open_telemetry(MessageStore(client, prefix))
        subscription = store.create_subscription(filter_subject, consumer, handlers={"OrderPlaced": handle})
        subscription.start()
        await asyncio.wait_for(handled.wait(), timeout=20)
        # The span ends when the handler returns: give the worker's loop the turn to finish it.
        for _ in range(100):
            if any(span["kind"] == "CONSUMER" for span in tracing.finished_spans()):
                break
            await asyncio.sleep(0.01)
        await subscription.stop()
        print(json.dumps({"spans": tracing.finished_spans()}))
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
