"""Runs a Python message-store worker whose handler always fails, until it dead-letters a message.

Usage: python_dead_letters.py NATS_URL PREFIX FILTER CONSUMER DEAD_LETTER_SUBJECT EXPECTED_DLQ_SUBJECT
Prints {"handler_runs": N} once the dead letter is stored under EXPECTED_DLQ_SUBJECT.
"""
import asyncio
import json
import sys

import nats
from message_store import MessageStore


async def main(url, prefix, filter_subject, consumer, dead_letter_subject, expected_subject):
    client = await nats.connect(url)
    runs = 0

    def failing(message):
        nonlocal runs
        runs += 1
        raise RuntimeError("python handler failure")

    try:
        store = MessageStore(client, prefix)
        subscription = store.create_subscription(
            filter_subject,
            consumer,
            handlers={"OrderPlaced": failing},
            dead_letter_subject=dead_letter_subject,
        )
        subscription.start()
        js = client.jetstream()
        stream = await js.find_stream_name_by_subject(f"{prefix}.{expected_subject}")
        for _ in range(300):
            try:
                await js.get_last_msg(stream, f"{prefix}.{expected_subject}")
                break
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.1)
        else:
            raise SystemExit("the Python worker never dead-lettered the message")
        await subscription.stop()
        print(json.dumps({"handler_runs": runs}))
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
