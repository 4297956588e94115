"""Benchmark: the stages' CPU per change event in this tree against another revision, in paired runs.

Single runs of bench/stages.py vary by 10-20 % on a shared machine, more
than most single changes to the stages are worth. This runs both trees
through the same backlog at the same time, each on a core of its own, and
swaps the cores at each pair: whatever slows the machine down during a pair
slows both. It prints each pair, then the mean difference per change event
with its standard error. A difference within two standard errors of zero is
noise.

    .venv/bin/python bench/compare.py BASE [--entries 30000] [--inserts-only] [--pairs 12]

BASE is a git revision, checked out into a temporary worktree, or the
directory of another checkout. Both trees need bench/stages.py. Both run
with the Python that runs this script, so with the same libraries. With one
core, the two trees take turns instead.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("route", "project", "resource", "rollup")


def child(root: Path, backlog: Path, core: int | None) -> None:
    """One run of ``root``'s stages through the backlog; prints its CPU per change event as JSON."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    sys.path[:0] = [str(root / "bench"), str(root)]  # that tree's stages and processors, not this one's
    import stages  # bench/stages.py of ``root``
    from confluent_kafka.schema_registry import Schema

    with backlog.open("rb") as f:
        events, schema_texts = pickle.load(f)
    if "headers" not in inspect.signature(stages._Event.__init__).parameters:
        events = [event[:3] for event in events]  # a tree before the position header takes (topic, key, value)
    registry = stages.MemoryRegistry()
    for text in schema_texts:  # registered in id order, so the events' schema ids mean the same schemas
        registry.register_schema("backlog", Schema(text, "AVRO"))
    with tempfile.TemporaryDirectory(prefix="psmesh-bench-compare-") as home:
        cpu = stages.run(events, registry, Path(home))[0]  # (cpu, views[, published]): older trees give two
    print(json.dumps({stage: cpu[stage] / len(events) * 1e6 for stage in STAGES}))


def checkout(base: str, into: Path) -> Path:
    """The tree to compare with: a directory as it is, or a revision checked out into ``into``."""
    if Path(base).is_dir():
        return Path(base).resolve()
    try:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), base],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"compare: {base!r} is neither a directory nor a revision git can check out: {exc.stderr.strip()}")
    return into


def write_backlog(entries: int, inserts_only: bool, path: Path) -> int:
    sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
    import stages  # this tree's bench/stages.py
    from backlog import produce

    registry = stages.MemoryRegistry()
    backlog = stages.EncodedBacklog(registry)
    produce(backlog, entries, inserts_only)
    texts = [registry.schemas[i].schema_str for i in sorted(registry.schemas)]
    with path.open("wb") as f:
        pickle.dump((backlog.events, texts), f)
    return len(backlog.events)


def pair(trees: dict[str, Path], backlog: Path, cores: list[int | None]) -> dict[str, dict[str, float]]:
    """One run of each tree, at the same time when ``cores`` has one per tree, else one after the other."""
    def start(tree: Path, core: int | None) -> subprocess.Popen:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(tree), str(backlog)]
        if core is not None:
            command += ["--core", str(core)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    out = {}
    if None in cores:  # one core: in turn
        for name, tree in trees.items():
            proc = start(tree, None)
            out[name] = _result(name, proc)
        return out
    procs = {name: start(tree, core) for (name, tree), core in zip(trees.items(), cores)}
    return {name: _result(name, proc) for name, proc in procs.items()}


def _result(name: str, proc: subprocess.Popen) -> dict[str, float]:
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"compare: the run of {name} failed (exit {proc.returncode}); its error is above")
    return json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", nargs="?", help="git revision or directory to compare this tree with")
    parser.add_argument("--entries", type=int, default=30000,
                        help="time entries (2 change events each; 1 with --inserts-only)")
    parser.add_argument("--inserts-only", action="store_true", help="as bench/stages.py --inserts-only")
    parser.add_argument("--pairs", type=int, default=12, help="paired runs")
    parser.add_argument("--child", nargs=2, metavar=("TREE", "BACKLOG"), help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.core)
        return
    if not args.base:
        parser.error("give the revision or directory to compare with (for example HEAD~1)")
    if args.pairs < 2:
        parser.error("--pairs must be at least 2, for a standard error")

    with tempfile.TemporaryDirectory(prefix="psmesh-bench-compare-") as tmp:
        worktree = Path(tmp) / "base"
        base = checkout(args.base, worktree)
        try:
            if not (base / "bench" / "stages.py").is_file():
                sys.exit(f"compare: {base} has no bench/stages.py (it came with the seventh round of "
                         "docs/processors-performance.md); compare with a later revision")
            backlog = Path(tmp) / "backlog.pickle"
            count = write_backlog(args.entries, args.inserts_only, backlog)
            trees = {"this tree": ROOT, "base": base}
            usable = sorted(os.sched_getaffinity(0))
            cores: list[int | None] = usable[:2] if len(usable) >= 2 else [None, None]
            print(f"backlog: {count:,} change events; this tree {ROOT}, base {args.base} ({base}); "
                  + ("both at once, one core each" if None not in cores else "one core: in turn"))
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            for number in range(1, args.pairs + 1):
                got = pair(trees, backlog, cores)
                for name in trees:
                    runs[name].append(got[name])
                print(f"pair {number}: this tree {sum(got['this tree'].values()):.1f}, "
                      f"base {sum(got['base'].values()):.1f} µs per change event")
                cores.reverse()  # the other core for each tree next time
            report(runs)
        finally:
            if base == worktree:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                               check=False, capture_output=True)


def report(runs: dict[str, list[dict[str, float]]]) -> None:
    totals = {name: [sum(r.values()) for r in rs] for name, rs in runs.items()}
    diffs = [a - b for a, b in zip(totals["this tree"], totals["base"])]
    base_mean = statistics.mean(totals["base"])
    mean, error = statistics.mean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5
    print(f"this tree: median {statistics.median(totals['this tree']):.1f}, base: median "
          f"{statistics.median(totals['base']):.1f} µs per change event")
    by_stage = ", ".join(
        f"{stage} {statistics.mean(a[stage] - b[stage] for a, b in zip(runs['this tree'], runs['base'])):+.1f}"
        for stage in STAGES)
    print(f"difference (this tree − base): {mean:+.1f} µs per change event ({mean / base_mean:+.1%}), "
          f"standard error {error:.1f} over {len(diffs)} pairs; by stage: {by_stage}")
    verdict = "within noise" if abs(mean) < 2 * error else ("faster" if mean < 0 else "slower")
    print(f"this tree is {verdict} (a difference under two standard errors is taken as noise)")


if __name__ == "__main__":
    main()
