#!/usr/bin/env python3
"""Python `websockets` as a client with its default permessage-deflate offer, against an echo server:
checks that the server agreed the extension, then that large compressible, incompressible and many
small messages come back exactly.

usage: python_deflate_client.py ws://HOST:PORT/PATH EXPECTED-PARAMETERS
  EXPECTED-PARAMETERS: the parameters the server's answer must hold, e.g.
  "server_no_context_takeover,client_no_context_takeover" (or "-" for none).
Prints one line per check; exits 1 on the first that fails.
"""
import asyncio
import json
import os
import sys

import websockets


def fail(message: str) -> None:
    print(f"python client: FAILED: {message}", flush=True)
    sys.exit(1)


async def main(url: str, expected: str) -> None:
    async with websockets.connect(url, max_size=2**20, open_timeout=10) as connection:
        offered = connection.request.headers.get("Sec-WebSocket-Extensions", "")
        answer = connection.response.headers.get("Sec-WebSocket-Extensions", "")
        print(f"python client: offered '{offered}', server answered '{answer}'", flush=True)
        if not answer.startswith("permessage-deflate"):
            fail("the server did not agree permessage-deflate")
        parameters = {p.strip().split("=")[0] for p in answer.split(";")[1:]}
        wanted = set() if expected == "-" else set(expected.split(","))
        if not wanted <= parameters:
            fail(f"answer lacks {sorted(wanted - parameters)}")

        records = [{"id": i, "user": f"user-{i % 37}", "event": "trade", "price": 100 + i % 13, "ok": True}
                   for i in range(6000)]
        big_text = json.dumps(records)[: 900_000]
        noise = os.urandom(300_000)
        for name, message in [("compressible text", big_text), ("incompressible binary", noise)]:
            await connection.send(message)
            back = await asyncio.wait_for(connection.recv(), 10)
            if back != message:
                fail(f"{name} ({len(message)} bytes) did not come back intact")
            print(f"python client: {name}, {len(message)} bytes: echoed intact", flush=True)
        small = [json.dumps({"seq": i, "text": "hello " * (20 + i % 40)}) for i in range(2000)]
        for message in small:
            await connection.send(message)
        for message in small:
            back = await asyncio.wait_for(connection.recv(), 10)
            if back != message:
                fail("a small message came back changed or out of order")
        print(f"python client: {len(small)} small messages: echoed intact, in order", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
