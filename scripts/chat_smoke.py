"""Drives Examples' chat server as users would, with the `websockets` client from PyPI.

usage: chat_smoke.py PORT          (then the caller sends SIGINT and checks the exit)
Prints one line per check and exits non-zero at the first that fails. Every wait is bounded.
"""
import asyncio, json, sys, urllib.request
import websockets

PORT = int(sys.argv[1])
BASE = f"ws://127.0.0.1:{PORT}"


async def expect(ws, wanted):
    got = await asyncio.wait_for(ws.recv(), 5)
    if got != wanted:
        raise SystemExit(f"chat: expected {wanted!r}, got {got!r}")


def rooms():
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/rooms", timeout=5) as response:
        return response.status, json.load(response)


async def main():
    alice = await websockets.connect(f"{BASE}/chat/lobby?name=alice")
    await expect(alice, "* alice joined lobby")
    bob = await websockets.connect(f"{BASE}/chat/lobby?name=bob")
    await expect(bob, "* bob joined lobby")
    await expect(alice, "* bob joined lobby")
    carol = await websockets.connect(f"{BASE}/chat/other?name=carol")
    await expect(carol, "* carol joined other")
    await alice.send("héllo, room ✓")
    await expect(alice, "alice: héllo, room ✓")
    await expect(bob, "alice: héllo, room ✓")
    status, listed = await asyncio.to_thread(rooms)
    if status != 200 or listed != {"rooms": [{"name": "lobby", "members": 2}, {"name": "other", "members": 1}]}:
        raise SystemExit(f"chat: GET /rooms gave {status} {listed}")
    print("chat: two rooms, messages reach their room only, GET /rooms lists them: ok")
    await carol.close()
    await bob.close()
    await expect(alice, "* bob left")
    try:
        await websockets.connect(f"{BASE}/chat/no%20spaces")
        raise SystemExit("chat: a bad room name was accepted")
    except websockets.exceptions.InvalidStatus as refused:
        if refused.response.status_code != 404:
            raise SystemExit(f"chat: a bad room name got {refused.response.status_code}")
    print("chat: leaving is announced, a bad room name gets 404: ok")
    print("waiting for the signal", flush=True)
    try:
        await asyncio.wait_for(alice.recv(), 20)
        raise SystemExit("chat: a message instead of the close")
    except websockets.exceptions.ConnectionClosed:
        code = alice.close_code
    if code != 1001:
        raise SystemExit(f"chat: closed with {code}, not 1001")
    print("chat: SIGINT closes everyone with 1001: ok")


asyncio.run(main())
