"""Validate the catalog data: ``python -m dissectors.check_catalog [ROOT]``.

Loads every file through rpcinspect's own loader (so the checks are exactly what the analyzer
enforces at start-up) and adds the cross-file checks a loader need not repeat.  Exit status 1
with a one-line message on the first problem; otherwise prints counts.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rpcinspect.catalog.loader import CatalogError, load_catalog

ROOT = Path(__file__).resolve().parent


def check(root: Path = ROOT) -> dict[str, int]:
    """Raise CatalogError on bad data; return counts."""
    cat = load_catalog(root)
    for path in sorted((root / "interfaces").glob("*.toml")):
        stem = path.stem
        name = tomllib.loads(path.read_text(encoding="utf-8"))["name"]
        if name != stem:
            raise CatalogError(f"interfaces/{path.name}: name {name!r} differs from the file name")
    xref = root / "wireshark.toml"
    if xref.exists():
        data = tomllib.loads(xref.read_text(encoding="utf-8"))
        for table in ("bind_names", "opnum_fields"):
            for key, value in data.get(table, {}).items():
                short = value if table == "bind_names" else key
                if cat.interface_by_name(short) is None:
                    raise CatalogError(f"wireshark.toml: [{table}] {key!r} names unknown interface {short!r}")
    faults = tomllib.loads((root / "faults.toml").read_text(encoding="utf-8"))
    pipes = tomllib.loads((root / "pipes.toml").read_text(encoding="utf-8"))
    return {
        "interfaces": len(cat.interfaces),
        "opnums": sum(len(i.opnums) for i in cat.interfaces),
        "pipes": len(pipes["pipes"]),
        "faults": len(faults["faults"]),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else ROOT
    try:
        counts = check(root)
    except CatalogError as exc:
        print(f"catalog error: {exc}", file=sys.stderr)
        return 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
