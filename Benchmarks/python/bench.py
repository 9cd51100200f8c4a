"""The Python implementation: PyPI message-store 0.4.0 on nats-py, used as its README shows.

One scenario, one repetition; prints one JSON result line.

    python bench.py <scenario> --url nats://127.0.0.1:PORT --prefix P --n N [--sample-at K]

Scenarios: publish_sync, publish_pipelined, consume, consume_slow, poison, replay, latency, memory,
io_concurrent, publish_fanin (100 coroutines each awaiting its publishes, N in all), large_messages
(N 64 KiB bodies published pipelined, then consumed), cold_start (a new worker handles the first
stored message and prints a line at once: the runner times the process from its start to it).
consume, replay and memory expect N BenchEvent messages already stored on bench.events.1.
"""

import argparse
import asyncio
import json
import sys
import time

import nats
from message_store import Message, MessageStore, Projection

SUBJECT = "bench.events.1"
PIPELINE_WINDOW = 4000  # the Swift library's maxPublishesInFlight


def bench_event(index):
    return Message(
        "BenchEvent",
        {"id": index, "amount": index % 1000, "currency": "EUR", "note": "benchmark payload padding text"},
    )


def proc_status(key):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


async def stop_worker(nc, subscription):
    # The package's stop() waits for its 5-second long poll to end; closing the connection ends
    # it at once. Neither is timed.
    await nc.close()
    try:
        await asyncio.wait_for(subscription.stop(), timeout=10)
    except Exception:
        pass


LARGE_BLOB = 65536


async def cold_start(args):
    nc = await nats.connect(args.url)
    store = MessageStore(nc, args.prefix, should_create_missing_streams=True)
    first = asyncio.Event()

    async def handle(message):
        first.set()

    worker = store.create_subscription("bench.>", "bench-worker", handlers={"BenchEvent": handle})
    worker.start()
    await first.wait()
    print(json.dumps({"impl": "python", "n": 1, "per_second": 0, "scenario": "cold_start", "seconds": 0}))
    sys.stdout.flush()
    await stop_worker(nc, worker)


async def run(args):
    if args.scenario == "cold_start":
        await cold_start(args)
        sys.exit(0)
    nc = await nats.connect(args.url)
    store = MessageStore(nc, args.prefix, should_create_missing_streams=True)
    await store.ensure_stream("bench")
    n = args.n
    result = {"scenario": args.scenario, "impl": "python", "n": n}
    worker = None

    if args.scenario == "publish_sync":
        start = time.perf_counter()
        for index in range(n):
            await store.publish_message(SUBJECT, bench_event(index))
        result["seconds"] = time.perf_counter() - start

    elif args.scenario == "publish_pipelined":
        window = asyncio.Semaphore(PIPELINE_WINDOW)

        async def publish(index):
            async with window:
                return await store.publish_message(SUBJECT, bench_event(index))

        start = time.perf_counter()
        acks = await asyncio.gather(*(publish(index) for index in range(n)))
        result["seconds"] = time.perf_counter() - start
        assert len(acks) == n

    elif args.scenario == "publish_fanin":
        tasks = 100

        async def publisher(first):
            for index in range(first, n, tasks):
                await store.publish_message(SUBJECT, bench_event(index))

        start = time.perf_counter()
        await asyncio.gather(*(publisher(task) for task in range(tasks)))
        result["seconds"] = time.perf_counter() - start

    elif args.scenario == "large_messages":
        window = asyncio.Semaphore(PIPELINE_WINDOW)
        blob = "x" * LARGE_BLOB
        done = asyncio.Event()
        state = {"seen": 0}

        async def publish_large(index):
            async with window:
                return await store.publish_message("bench.large.1", Message("LargeEvent", {"id": index, "blob": blob}))

        async def handle_large(message):
            if len(message.data["blob"]) != LARGE_BLOB:
                raise RuntimeError("truncated")
            state["seen"] += 1
            if state["seen"] == n:
                done.set()

        start = time.perf_counter()
        await asyncio.gather(*(publish_large(index) for index in range(n)))
        worker = store.create_subscription("bench.>", "bench-worker", handlers={"LargeEvent": handle_large})
        worker.start()
        await done.wait()
        result["seconds"] = time.perf_counter() - start
        result["mb_per_second"] = 2 * n * LARGE_BLOB / result["seconds"] / 1048576

    elif args.scenario in ("consume", "memory"):
        done = asyncio.Event()
        state = {"seen": 0, "rss_at_sample": 0}

        async def handle(message):
            state["seen"] += 1
            if state["seen"] == args.sample_at:
                state["rss_at_sample"] = proc_status("VmRSS")
            if state["seen"] == n:
                done.set()

        worker = store.create_subscription("bench.>", "bench-worker", handlers={"BenchEvent": handle})
        start = time.perf_counter()
        worker.start()
        await done.wait()
        result["seconds"] = time.perf_counter() - start
        if args.scenario == "memory":
            result["rss_bytes"] = proc_status("VmHWM")
            result["rss_bytes_at_50k"] = state["rss_at_sample"]

    elif args.scenario == "consume_slow":
        done = asyncio.Event()
        seen = set()
        state = {"handled": 0}

        async def handle_slowly(message):
            await asyncio.sleep(0.005)
            state["handled"] += 1
            seen.add(message.data["id"])
            if len(seen) == n:
                done.set()

        worker = store.create_subscription("bench.>", "bench-worker", handlers={"BenchEvent": handle_slowly})
        start = time.perf_counter()
        worker.start()
        await done.wait()
        result["seconds"] = time.perf_counter() - start
        result["handled_twice"] = state["handled"] - len(seen)

    elif args.scenario == "io_concurrent":
        # The package runs one handler at a time: in stream order, each awaiting its 2 ms.
        keys = max(args.keys, 1)
        for index in range(n):
            await store.publish_message(f"bench.events.{index % keys}", bench_event(index))
        done = asyncio.Event()
        state = {"seen": 0}

        async def handle_io(message):
            await asyncio.sleep(0.002)
            state["seen"] += 1
            if state["seen"] == n:
                done.set()

        worker = store.create_subscription("bench.>", "bench-worker", handlers={"BenchEvent": handle_io})
        start = time.perf_counter()
        worker.start()
        await done.wait()
        result["seconds"] = time.perf_counter() - start

    elif args.scenario == "poison":
        await store.ensure_stream("dead")
        ready = asyncio.Event()
        dead_letters = asyncio.Queue()

        async def warmup(message):
            ready.set()

        async def poison(message):
            raise RuntimeError("poison")

        async def on_dead_letter(msg):
            dead_letters.put_nowait(time.perf_counter())

        await nc.subscribe(f"{args.prefix}.dead.>", cb=on_dead_letter)
        worker = store.create_subscription(
            "bench.>",
            "bench-worker",
            handlers={"Warmup": warmup, "PoisonEvent": poison},
            max_number_of_retries=3,
            dead_letter_subject="dead",
        )
        worker.start()
        await store.publish_message("bench.warmup.1", Message("Warmup", {"id": 0}))
        await ready.wait()
        # With --n above 1, more poison messages one after the other (as the Swift program
        # does): the median, which leaves out what only the process's first failure costs.
        times = []
        for index in range(1, max(n, 1) + 1):
            start = time.perf_counter()
            await store.publish_message("bench.poison.1", Message("PoisonEvent", {"id": index}))
            arrived = await asyncio.wait_for(dead_letters.get(), timeout=120)
            times.append(arrived - start)
        result["seconds"] = sorted(times)[len(times) // 2]
        result["n"] = 1
        result["schedule"] = "zero"

    elif args.scenario == "replay":

        def fold(state, message):
            return (state[0] + 1, state[1] + message.data["amount"])

        projection = Projection(lambda: (0, 0), {"BenchEvent": fold})
        start = time.perf_counter()
        count, _ = await store.fetch(SUBJECT, projection)
        result["seconds"] = time.perf_counter() - start
        if count != n:
            raise SystemExit(f"bench.py: replay folded {count} of {n} messages")

    elif args.scenario == "latency":
        handled = asyncio.Event()
        ready = asyncio.Event()
        seen_at = [0.0]

        async def warmup(message):
            ready.set()

        async def handle(message):
            seen_at[0] = time.perf_counter()
            handled.set()

        worker = store.create_subscription("bench.>", "bench-worker", handlers={"Warmup": warmup, "BenchEvent": handle})
        worker.start()
        await store.publish_message("bench.warmup.1", Message("Warmup", {"id": 0}))
        await ready.wait()
        latencies = []
        start = time.perf_counter()
        for index in range(n):
            handled.clear()
            sent = time.perf_counter()
            await store.publish_message(SUBJECT, bench_event(index))
            await handled.wait()
            latencies.append((seen_at[0] - sent) * 1000)
        result["seconds"] = time.perf_counter() - start
        latencies.sort()
        result["p50_ms"] = latencies[min(len(latencies) - 1, len(latencies) // 2)]
        result["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]

    else:
        raise SystemExit(f"bench.py: unknown scenario {args.scenario}")

    if worker is not None:
        await stop_worker(nc, worker)
    else:
        await nc.close()
    seconds = result["seconds"]
    result["per_second"] = result["n"] / seconds if seconds > 0 else 0
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--sample-at", type=int, default=50000)
    parser.add_argument("--keys", type=int, default=500)
    # The package has no ordering option: it handles one message at a time, in order.
    parser.add_argument("--ordering", default="unordered")
    # The package naks at once; it has no retry schedule, so only "zero" exists here.
    parser.add_argument("--schedule", choices=["zero"], default="zero")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, sort_keys=True))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
