"""Reads every message on a subject with the Python message-store package and prints them as JSON.

Usage: python_reads.py NATS_URL PREFIX SUBJECT
"""
import asyncio
import json
import sys

import nats
from message_store import MessageStore, Projection


class CollectAll(Projection):
    """A projection that keeps every message, whatever its type."""

    def __init__(self):
        super().__init__(list, handlers={})

    def handle(self, type, message):
        entry = message.to_dict()
        entry.pop("timestamp", None)
        self._entity.append(entry)


async def main(url: str, prefix: str, subject: str) -> None:
    client = await nats.connect(url)
    try:
        store = MessageStore(client, prefix)
        messages = await store.fetch(subject, CollectAll())
        print(json.dumps(messages))
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
