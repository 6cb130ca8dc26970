"""A small asyncio service for trying aprof: a line-protocol server on 127.0.0.1, clients that
load it, a CPU-heavy handler, and a handler that (wrongly) blocks the event loop.

    python3 examples/demo_app.py [--duration SECONDS]

Standard library only, so it runs under any CPython 3.10+.
"""
import argparse
import asyncio
import hashlib
import time


def checksum(payload: bytes, rounds: int) -> str:
    digest = payload
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def render_report(n: int) -> str:
    # Pure-Python CPU work, done right on the event loop.
    rows = []
    for i in range(n):
        rows.append(",".join(str(i * j) for j in range(20)))
    return "\n".join(rows)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        command = line.decode().strip()
        if command == "report":
            body = render_report(300)
        elif command == "legacy":
            time.sleep(0.15)  # a blocking call inside async code: stalls every other client
            body = "legacy done"
        else:
            await asyncio.sleep(0.005)
            body = checksum(command.encode(), 50)
        writer.write(f"{len(body)}\n".encode())
        await writer.drain()
    writer.close()


async def client(name: str, port: int, commands: list, stop: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    while time.monotonic() < stop:
        for command in commands:
            writer.write(f"{command}\n".encode())
            await writer.drain()
            await reader.readline()
            done += 1
        await asyncio.sleep(0.01)
    writer.close()
    return done


async def main(duration: float) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = time.monotonic() + duration
    async with server:
        clients = [asyncio.create_task(client(f"client-{i}", port, ["ping", "ping", "report"], stop),
                                       name=f"client-{i}") for i in range(8)]
        clients.append(asyncio.create_task(client("legacy-client", port, ["legacy"], stop),
                                           name="legacy-client"))
        results = await asyncio.gather(*clients)
    print(f"demo_app: {sum(results)} requests served in {duration:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    asyncio.run(main(parser.parse_args().duration))
