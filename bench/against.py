"""This tree against an earlier commit, through the broker: each round runs the backlog through one
worker per runtime (and the Quix peer) in this tree and then in a worktree of the earlier commit, so
that the machine's drift (a busier broker as topics accumulate, other load) falls on both alike.
What a refactor promises ("behaviour unchanged, the bench within noise") is checked this way: the
ratio of the medians, and of each round's pair.

Usage: make bench BENCH_ARGS="--only against --against 86355f6 --rounds 5"
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.progress import stage
from streams.settings import PROJECT_ROOT

# Runs in a tree (its own code on the path): one backlog per runtime, rates printed as JSON.
_ONE_ROUND = """
import json, sys
from streams.settings import load_settings
from bench import pipeline
base = load_settings().model_copy(update={"metrics_port": 0})
rates = {r: pipeline.throughput(base, runtime=r, guarantee="exactly_once", count=int(sys.argv[2]))["records_per_s"]
         for r in sys.argv[1].split(",")}
print("RATES " + json.dumps(rates), flush=True)
"""


def run_in(tree: Path, script: str, *args: str, tag: str) -> Any:
    """Runs ``script`` with ``tree``'s own code on the path and returns the JSON it printed after
    ``tag`` (a line ``<tag> <json>``); a clear error, never a traceback, when it printed none."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith(f"{tag} "):
            return json.loads(line[len(tag) + 1 :])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"the run in {tree} printed no {tag} (exit {done.returncode}): {tail}")


def short(commit: str) -> str:
    """``commit``'s short hash (HEAD for this tree)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", commit], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """A detached worktree of ``commit`` for the length of the block (the peer's venv linked in)."""
    with tempfile.TemporaryDirectory(prefix="jointuse-against-") as folder:
        tree = Path(folder) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), commit], cwd=PROJECT_ROOT, check=True, capture_output=True
        )
        try:
            peer = PROJECT_ROOT / ".venv-peer"
            if peer.exists():
                (tree / ".venv-peer").symlink_to(peer)
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=PROJECT_ROOT, check=False, capture_output=True
            )


def _round(tree: Path, runtimes: tuple[str, ...], count: int) -> dict[str, int]:
    rates: dict[str, int] = run_in(tree, _ONE_ROUND, ",".join(runtimes), str(count), tag="RATES")
    return rates


def run(
    against: str, *, rounds: int = 5, runtimes: tuple[str, ...] = ("confluent", "faust", "quix"), count: int = 20_000
) -> dict[str, Any]:
    commit, here = short(against), short("HEAD")
    this: list[dict[str, int]] = []
    that: list[dict[str, int]] = []
    with worktree(commit) as tree:
        for n in range(1, rounds + 1):
            with stage(f"against {commit}: round {n} of {rounds}, this tree ({here})"):
                this.append(_round(PROJECT_ROOT, runtimes, count))
            with stage(f"against {commit}: round {n} of {rounds}, {commit}"):
                that.append(_round(tree, runtimes, count))
    out: dict[str, Any] = {"this": here, "against": commit, "rounds": rounds, "records": count}
    for runtime in runtimes:
        mine, theirs = [r[runtime] for r in this], [r[runtime] for r in that]
        out[f"{runtime}_records_per_s_this"] = mine
        out[f"{runtime}_records_per_s_against"] = theirs
        out[f"{runtime}_this_over_against"] = round(statistics.median(mine) / statistics.median(theirs), 3)
        out[f"{runtime}_pairs_this_over_against"] = [round(a / b, 3) for a, b in zip(mine, theirs, strict=True)]
    return out
