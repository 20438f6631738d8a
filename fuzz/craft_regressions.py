#!/usr/bin/env python3
"""Write the hand-built regression inputs of tests/fixtures/fuzz/.

The fuzzers pointed at the object-tree walkers (find_tensors, meta, to_json)
but their mutations rarely build the shared and repeated structures that make
those slow, so these inputs are built directly: torch legacy files (no CRC to
satisfy) whose object pickle is small and hostile. See docs/fuzzing.md.

    python3 fuzz/craft_regressions.py   # from the repository root
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "fuzz")

MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019") + b"."  # torch's magic number, LONG1
PROTOCOL = b"\x80\x02M\xe9\x03."  # 1001
SYS_INFO = (
    b"\x80\x02}q\x00(X\x10\x00\x00\x00protocol_versionq\x01M\xe9\x03X\r\x00\x00\x00little_endianq\x02\x88"
    b"X\n\x00\x00\x00type_sizesq\x03}q\x04(X\x05\x00\x00\x00shortq\x05K\x02X\x03\x00\x00\x00intq\x06K\x04"
    b"X\x04\x00\x00\x00longq\x07K\x04uu."
)
NO_KEYS = b"\x80\x02]."


def legacy(obj_pickle):
    """A torch legacy file with this object pickle and no storages."""
    return MAGIC + PROTOCOL + SYS_INFO + obj_pickle + NO_KEYS


def s(text):
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")


os.makedirs(OUT, exist_ok=True)

# L = [L, L]: a cycle; every path is followed to the depth bound.
write("inspect-cycle-walk.bin", legacy(b"\x80\x02]q\x00(h\x00h\x00e."))

# L0 = []; L(k+1) = [Lk, Lk] for 40 levels: no cycle, 2^40 paths; the walk
# runs to its 20M-step bound.
dag = b"\x80\x02]q\x00" + b"".join(b"(h" + bytes([i]) + b"h" + bytes([i]) + b"lq" + bytes([i + 1]) for i in range(40)) + b"."
write("inspect-dag-walk.bin", legacy(dag))

# optimizer_states[0].state: 1000 params sharing one dict of 5000 distinct
# keys; meta::optimizer dedups state keys with Vec::contains.
keys = b"}q\x01(" + b"".join(b"M" + struct.pack("<H", k) + b"N" for k in range(5000)) + b"u"
state = b"}(" + b"".join(b"M" + struct.pack("<H", i) + b"h\x01" for i in range(1000)) + b"u"
opt = b"}(" + s("state") + state + s("param_groups") + b"]" + b"u"
write(
    "inspect-optimizer-keys.bin",
    legacy(b"\x80\x02}(" + keys + b"0" + s("optimizer_states") + b"(" + opt + b"l" + b"u."),
)

# hyper_parameters = [[S] * 10000] * 100 with S a 30 KB string: 1M JSON
# values within the value budget, each a 30 KB copy (30 GB).
big = b"X" + struct.pack("<I", 30000) + b"s" * 30000 + b"q\x01"
row = b"(" + b"h\x01" * 10000 + b"lq\x02"
write(
    "inspect-json-strings.bin",
    legacy(b"\x80\x02}(" + s("hyper_parameters") + big + b"0" + row + b"0" + b"(" + b"h\x02" * 100 + b"l" + b"u."),
)

# The same through a call's single argument (`foo.Bar(x)` converts as x),
# which the tensor walk does not enter, so only the JSON budget bounds it.
write(
    "inspect-json-strings-args.bin",
    legacy(b"\x80\x02}(" + s("hyper_parameters") + b"cfoo\nBar\n" + big + b"0" + row + b"0" + b"(" + b"h\x02" * 100 + b"l" + b"\x85R" + b"u."),
)

# ... with a global of a 30 KB module name instead of the string: globals
# are charged 1 whatever their length.
glob = b"c" + b"m" * 30000 + b"\nname\nq\x01"
write(
    "inspect-json-globals.bin",
    legacy(b"\x80\x02}(" + s("hyper_parameters") + b"cfoo\nBar\n" + glob + b"0" + row + b"0" + b"(" + b"h\x02" * 100 + b"l" + b"\x85R" + b"u."),
)

# foo.Bar([D] * 1000), D a dict of 1000 distinct keys, each a tuple of 15
# references to one 30 KB string and an int: dict keys are rendered by
# key_string without being charged (1000 maps of 450 MB).
kbig = b"X" + struct.pack("<I", 30000) + b"k" * 30000 + b"q\x01"
tkeys = b"".join(b"(" + b"h\x01" * 15 + b"M" + struct.pack("<H", i) + b"t" + b"N" for i in range(1000))
write(
    "inspect-json-tuple-keys.bin",
    legacy(b"\x80\x02}(" + s("hyper_parameters") + b"cfoo\nBar\n" + kbig + b"0" + b"}q\x02(" + tkeys + b"u" + b"0" + b"(" + b"h\x02" * 1000 + b"l" + b"\x85R" + b"u."),
)

# numpy.core.multiarray.scalar(None, bytes(bytes(...bytes()...))) nested
# 30000 deep: view::codecs_bytes recurses once per level (a stack overflow
# in debug builds; release happens to turn the tail call into a loop).
n = 30000
write(
    "inspect-nested-bytes.bin",
    legacy(
        b"\x80\x02}(" + s("hyper_parameters") + b"cnumpy.core.multiarray\nscalar\nN"
        + b"c__builtin__\nbytes\nq\x01" + b"0" + b"h\x01" * n + b"h\x01)R" + b"\x85R" * n + b"\x86R" + b"u."
    ),
)

# _rebuild_parameter(_rebuild_parameter(...(_rebuild_parameter(None)...)))
# 30000 deep as the root: tensor_at recursed once per level.
write(
    "inspect-nested-parameter.bin",
    legacy(
        b"\x80\x02ctorch._utils\n_rebuild_parameter\nq\x01" + b"0" + b"h\x01" * n + b"h\x01N\x85R" + b"\x85R" * n + b"."
    ),
)
