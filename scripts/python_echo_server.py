#!/usr/bin/env python3
"""A minimal echo server on the `websockets` package, to check perftest against a server that is not ours.

usage: python_echo_server.py PORT [deflate]   (prints "listening on 127.0.0.1:PORT" once ready; SIGTERM
stops it). With `deflate`, the server accepts permessage-deflate as websockets does by default.
"""
import asyncio
import signal
import sys

import websockets


async def echo(connection):
    async for message in connection:
        await connection.send(message)


async def main(port: int, compression) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(echo, "127.0.0.1", port, max_size=2**20, compression=compression):
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), "deflate" if sys.argv[2:] == ["deflate"] else None))
