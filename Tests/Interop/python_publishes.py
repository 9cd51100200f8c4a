"""Publishes one message with the Python message-store package and prints its acknowledgement.

Usage: python_publishes.py NATS_URL PREFIX SUBJECT MSG_ID
"""
import asyncio
import json
import sys

import nats
from message_store import Message, MessageMetadata, MessageStore


async def main(url: str, prefix: str, subject: str, msg_id: str) -> None:
    client = await nats.connect(url)
    try:
        store = MessageStore(client, prefix)
        message = Message(
            "OrderPlaced",
            {"orderId": "py-42", "amount": 17},
            MessageMetadata(origin_subject="orders.command.py-42", trace_id="trace-py", tenant="acme", attempt=2),
        )
        ack = await store.publish_message(subject, message, msg_id=msg_id, headers={"X-Origin": "python"})
        print(json.dumps({"stream": ack.stream, "seq": ack.seq, "duplicate": bool(ack.duplicate)}))
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
