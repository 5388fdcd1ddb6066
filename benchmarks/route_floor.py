"""The floor for bulk routing: the least a Python program can do to turn ids into routed lines.

    python route_floor.py SUFFIX_COUNT TAIL < ids > out

Reads ids (one per line), writes ``{"id":N<TAIL>`` per id with the tail picked by
``id % SUFFIX_COUNT``: no config, no validation, no CLI framework. shardctl's ``route --stdin``
does this plus loading the config and checking every id (0 ≤ id < 2^63).
"""

import sys

count = int(sys.argv[1])
tails = [sys.argv[2] + "\n"] * count
source, sink = sys.stdin.buffer, sys.stdout
carry = b""
while chunk := source.read(1 << 16):
    lines = (carry + chunk).split(b"\n")
    carry = lines.pop()
    sink.write("".join([f'{{"id":{i}{tails[i % count]}' for i in map(int, lines)]))
if carry.strip():
    sink.write(f'{{"id":{int(carry)}{tails[int(carry) % count]}')
