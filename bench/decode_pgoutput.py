"""Micro-benchmark: pgoutput Insert decoding (and text→Python conversion) on one core.

Decodes the Insert messages captured from PostgreSQL 15 under
tests/unit/streams/vectors/ (protocol 1 files, so no stream-block state is
involved) N times and prints messages per second:

* ``domain``: 150 rows shaped like DOMAIN.md's psa.resources (skills text[])
  and timeexp.time_entries (14 columns: bigint, text, date, numeric,
  boolean, timestamptz): what the capture will mostly see.
* ``narrow``: the inserts of vec.bulk (bigint, text).
* ``wide``: the inserts of vec.orders / vec.orders_full (18 columns including
  a 10-element text[] with every quoting case, numeric[] and int4[]; two rows
  carry an 8,000-character TOASTed text): a deliberately awkward worst case.

For each set it prints decode only, and decode + :class:`RowConverter`
(Decimal, datetime, list, ...), as the best of ``--repeat`` timed runs (the
build machines are shared; the best run is the least disturbed one). The
capture's target is 30,000 row changes/s on one core *including* the Avro
encoding, which this does not measure.

    .venv/bin/python bench/decode_pgoutput.py [--messages N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.pgoutput import Insert, PgOutputDecoder, Relation  # noqa: E402
from streams.pgtypes import RowConverter  # noqa: E402

VECTORS = ROOT / "tests" / "unit" / "streams" / "vectors" / "v1"


def load() -> tuple[dict[str, list[bytes]], dict[int, Relation]]:
    decoder = PgOutputDecoder(1)
    sets: dict[str, list[bytes]] = {"domain": [], "narrow": [], "wide": []}
    relations: dict[int, Relation] = {}
    for path in sorted(VECTORS.glob("*.json")):
        for row in json.loads(path.read_text())["messages"]:
            data = bytes.fromhex(row["data"])
            message = decoder.decode(data)
            if isinstance(message, Relation):
                relations[message.relation_id] = message
            elif isinstance(message, Insert):
                name = relations[message.relation_id].name
                if name in ("time_entries", "resources"):
                    sets["domain"].append(data)
                elif name == "bulk":
                    sets["narrow"].append(data)
                elif name in ("orders", "orders_full"):
                    sets["wide"].append(data)
    return sets, relations


def run(messages: list[bytes], relations: dict[int, Relation], rounds: int, convert: bool) -> float:
    decoder = PgOutputDecoder(1)
    decode = decoder.decode
    converters = {rid: RowConverter(rel.columns) for rid, rel in relations.items()}
    started = time.perf_counter()
    if convert:
        for _ in range(rounds):
            for data in messages:
                message = decode(data)
                converters[message.relation_id](message.new)
    else:
        for _ in range(rounds):
            for data in messages:
                decode(data)
    elapsed = time.perf_counter() - started
    return len(messages) * rounds / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pgoutput decode micro-benchmark")
    parser.add_argument("-n", "--messages", type=int, default=200_000, help="messages decoded per timed run")
    parser.add_argument("-r", "--repeat", type=int, default=5, help="timed runs per figure; the best is printed")
    args = parser.parse_args(argv)
    sets, relations = load()
    print(f"python {platform.python_version()} on {platform.machine()}; best of {args.repeat} runs")
    for name, messages in sets.items():
        rounds = max(1, args.messages // len(messages))
        run(messages, relations, 1, convert=True)  # warm-up
        for convert in (False, True):
            rate = max(run(messages, relations, rounds, convert) for _ in range(args.repeat))
            label = "decode + convert" if convert else "decode"
            print(f"{name:6} {len(messages):5d} msgs x {rounds:5d}  {label:16}  {rate:12,.0f} messages/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
