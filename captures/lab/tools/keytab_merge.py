#!/usr/bin/env python3
"""Merge MIT keytabs (format 0x0502) without losing or duplicating keys.

  python3 captures/lab/tools/keytab_merge.py OUT KEYTAB...

Writes OUT with every entry of the first KEYTAB, then every entry of the
following ones that is not already there.  Two entries are the same when
principal, realm, name type, kvno, encryption type and key bytes all agree
(the export timestamp is ignored), so one principal may keep several keys of
one kvno and etype: that is what captures/record.sh needs when the lab DC was
re-provisioned and only some scenarios are re-recorded: the kept captures
need the old DC1$/krbtgt keys, the new ones the current keys.  MIT klist,
tshark and rpcinspect try every key that matches a ticket.  Prints how many
entries each input contributed.  Lab secrets only; no key is printed.
"""

import struct
import sys


def entries(path):
    """(identity, raw entry body) of every live entry; deleted slots are skipped."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:2] != b"\x05\x02":
        sys.exit(f"{path}: not an MIT keytab of format 0x0502")
    out, o = [], 2
    while o + 4 <= len(b):
        (size,) = struct.unpack_from(">i", b, o)
        o += 4
        if size == 0:
            break
        if size < 0:
            o -= size
            continue
        body = b[o : o + size]
        if len(body) != size:
            sys.exit(f"{path}: entry at offset {o - 4} runs past the end")
        o += size
        p = 0
        (count,) = struct.unpack_from(">H", body, p)
        p += 2
        for _ in range(count + 1):  # realm, then the name components
            p += 2 + struct.unpack_from(">H", body, p)[0]
        p += 4  # name type; the 4-byte timestamp follows
        out.append((body[:p] + body[p + 4 :], body))
    return out


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    seen, merged, counts = set(), [], []
    for path in argv[2:]:
        n = 0
        for ident, body in entries(path):
            if ident not in seen:
                seen.add(ident)
                merged.append(body)
                n += 1
        counts.append(f"{path}: {n}")
    with open(argv[1], "wb") as f:
        f.write(b"\x05\x02")
        for body in merged:
            f.write(struct.pack(">i", len(body)) + body)
    print("keytab entries kept: " + ", ".join(counts))


if __name__ == "__main__":
    main(sys.argv)
