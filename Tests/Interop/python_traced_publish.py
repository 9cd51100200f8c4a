"""Publishes one message through message-store-open-telemetry 0.2.0 and prints the spans.

Usage: python_traced_publish.py NATS_URL PREFIX SUBJECT
Prints {"spans": [...]}: the PRODUCER span whose context went out in the headers.
"""
import asyncio
import json
import sys

import tracing  # sets up the OpenTelemetry SDK first

import nats
from message_store import Message, MessageStore
from message_store_open_telemetry import get_message_store_with_open_telemetry


async def main(url: str, prefix: str, subject: str) -> None:
    client = await nats.connect(url)
    try:
        store = get_message_store_with_open_telemetry(MessageStore(client, prefix))
        message = Message("OrderPlaced", {"orderId": "py-7", "amount": 3})
        await store.publish_message(subject, message, headers={"X-Origin": "python"})
        print(json.dumps({"spans": tracing.finished_spans()}))
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
