#!/usr/bin/env python3
"""A minimal echo server on the `websockets` package, to check perftest against a server that is not ours.

usage: python_echo_server.py PORT [deflate] [tls CERT KEY]   (prints "listening on 127.0.0.1:PORT" once
ready; SIGTERM stops it). With `deflate`, the server accepts permessage-deflate as websockets does by
default; with `tls`, it serves wss:// with that PEM certificate chain and key.
"""
import asyncio
import signal
import ssl
import sys

import websockets


async def echo(connection):
    async for message in connection:
        await connection.send(message)


async def main(port: int, compression, context) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(echo, "127.0.0.1", port, max_size=2**20, compression=compression, ssl=context):
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await stop


if __name__ == "__main__":
    args = sys.argv[2:]
    context = None
    if "tls" in args:
        at = args.index("tls")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args[at + 1], args[at + 2])
    asyncio.run(main(int(sys.argv[1]), "deflate" if "deflate" in args else None, context))
