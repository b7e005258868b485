"""Memory of idle connections that negotiated permessage-deflate, seen from the server.

Opens CONNECTIONS WebSocket connections to ws://127.0.0.1:PORT/ws/idle offering permessage-deflate
(client_max_window_bits, as browsers do), checks every answer agreed it, and reads the server's VmRSS
(from /proc/SERVER_PID/status) at three points:
  open     every connection upgraded, nothing sent yet;
  echoed   each connection sent one compressed JSON message of SIZE bytes and read the echo, so the
           server has made whatever a compressed message needs;
  swept    after IDLE seconds without traffic (the server's idle compressor sweep has run).
Prints one line: `RESULT before=KB open=KB echoed=KB swept=KB connections=N agreed=N replies=N`.

    python3 scripts/deflate_idle_client.py PORT SERVER_PID CONNECTIONS [SIZE] [IDLE]
"""
import asyncio
import base64
import os
import struct
import sys
import zlib


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"deflate_idle_client: no VmRSS for {pid}")


def json_events(size):
    parts, index = [], 0
    while sum(len(p) + 1 for p in parts) < size - 120:
        parts.append('{"id":%d,"user":"user-%d","symbol":"SYM%d","bid":%d.25}'
                     % (index, index * 7 % 31, index % 5, 100 + index * 13 % 97))
        index += 1
    return ("[" + ",".join(parts) + "]").encode()


def frame(payload, rsv1):
    """A masked text frame, as a client sends it."""
    mask = os.urandom(4)
    head = bytes([0x81 | (0x40 if rsv1 else 0)])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return head + mask + masked


async def read_frame(reader):
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    await reader.readexactly(n)
    return head[0]


class Connection:
    def __init__(self, reader, writer, agreed):
        self.reader, self.writer, self.agreed = reader, writer, agreed
        # The client's own compressor: a 4 KiB window, the window it tells the server it may use.
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -12, 5)


async def connect(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws/idle HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"deflate_idle_client: upgrade refused: {head[:40]!r}")
    agreed = b"permessage-deflate" in head.lower()
    return Connection(reader, writer, agreed), agreed


async def echo(connection, message):
    if not connection.agreed:  # Declined: a plain message.
        connection.writer.write(frame(message, rsv1=False))
        await connection.writer.drain()
        return (await read_frame(connection.reader)) & 0x0F == 1
    deflated = connection.compressor.compress(message) + connection.compressor.flush(zlib.Z_SYNC_FLUSH)
    connection.writer.write(frame(deflated[:-4], rsv1=True))
    await connection.writer.drain()
    return (await read_frame(connection.reader)) & 0x0F == 1


async def main():
    port, pid, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
    idle = float(sys.argv[5]) if len(sys.argv) > 5 else 21
    before = rss_kb(pid)
    connections, agreed = [], 0
    for start in range(0, count, 500):  # In batches: no listen-queue overflow, no SYN retries.
        opened = await asyncio.gather(*(connect(port) for _ in range(start, min(count, start + 500))))
        connections += [c for c, _ in opened]
        agreed += sum(1 for _, a in opened if a)
    await asyncio.sleep(1)
    opened_kb = rss_kb(pid)
    message = json_events(size)
    echoed = 0
    for start in range(0, count, 500):
        echoed += sum(await asyncio.gather(*(echo(c, message) for c in connections[start:start + 500])))
    await asyncio.sleep(1)
    echoed_kb = rss_kb(pid)
    await asyncio.sleep(idle)
    swept_kb = rss_kb(pid)
    print(f"RESULT before={before} open={opened_kb} echoed={echoed_kb} swept={swept_kb} "
          f"connections={len(connections)} agreed={agreed} replies={echoed}")
    for c in connections:
        c.writer.close()


asyncio.run(main())
