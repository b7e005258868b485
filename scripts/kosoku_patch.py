"""Makes kosoku 0.1.0 grade the permessage-deflate cases (12.*, 13.*) in both of its modes.

Its case 12/13 handler hashes each received message with hashlib, but the runner hands text messages
over as `str` (and binary ones as one-char-per-byte `str` in some paths), so every compressed case
ends in "Strings must be encoded before hashing" and is graded FAILED, whatever the peer sent. The
same handler serves the fuzzing client (our server under test) and the fuzzing server (our client
under test). This turns the message back into its bytes before hashing: latin-1 for binary (one char
per byte), UTF-8 for text.

usage: <venv>/bin/python scripts/kosoku_patch.py     (idempotent; says what it did)
"""
import pathlib
import sys

import kosoku.cases

MARK = "# strands: message as bytes before hashing\n"
HANDLER = "def onMessage(self, msg, binary):\n"
FIX = (MARK +
       "   if isinstance(msg, str):\n"
       "      msg = msg.encode('latin-1') if binary else msg.encode('utf-8')\n")

case_file = pathlib.Path(kosoku.cases.__file__).with_name("case12_x_x.py")
text = case_file.read_text()
if MARK in text:
    print(f"kosoku_patch: already patched: {case_file}")
    sys.exit(0)
if text.count(HANDLER) != 1 or "m.update(msg)" not in text.split(HANDLER, 1)[1][:200]:
    sys.exit(f"kosoku_patch: {case_file} is not the kosoku 0.1.0 file this patch knows; not changed")
case_file.write_text(text.replace(HANDLER, HANDLER + FIX, 1))
print(f"kosoku_patch: patched {case_file}")
