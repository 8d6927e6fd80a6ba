#!/usr/bin/env python3
"""What a restart of one of 3 state consumers costs the group, per way of sharing partitions.

For each mode below, on fresh topics (6 partitions) of one broker: start the five intakes and
three copies of orderflow-state (instances 0, 1, 2, each with its own store and metrics port),
play `orderflow simulate --orders N` through them and wait until every copy is ready, then
restart copy 1 (SIGTERM, start again after --down seconds) and measure until the group is settled again
(every copy answers 200 on /readyz, 6 partitions live between them, for SETTLE seconds):

  revoked      partitions taken from a copy (by any rebalance after the restart)
  assigned     partitions given to a copy, counting copy 1's own on its restart
  moved        partitions whose owner after the restart differs from before it
  refolded     log records the copies folded again, quietly, to rebuild what they were given
               (per assignment: committed offset minus the store's checkpoint it started at)
  unready s    from the SIGTERM until the group was settled

Modes:
  eager       roundrobin (eager) assignment, dynamic members: what orderflow did before
  cooperative cooperative-sticky, dynamic members
  static      cooperative-sticky, static members (group.instance.id from --instance): the default
  kip848      group.protocol=consumer (KIP-848, the broker assigns), static members

Usage: scripts/rebalance-bench.py [--orders N] [--down SECONDS] [--modes eager,cooperative,static,kip848]
(--down stays below the 6 s session timeout it runs with: a static member coming back within it
keeps its partitions)
Needs the release binaries (cargo build --release --locked) and a broker: ORDERFLOW_BROKERS,
else scripts/kafka.sh ensure. Prints a Markdown table (BENCHMARKS.md) and, with --json, JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
PARTITIONS = 6
SETTLE = 8.0
INTAKES = ["orders", "payments", "shipments", "inventory", "actions"]

MODES = {
    "eager": {
        "ORDERFLOW_KAFKA_CONSUMER__PARTITION_ASSIGNMENT_STRATEGY": "roundrobin",
        "ORDERFLOW_STATIC_MEMBERSHIP": "false",
    },
    "cooperative": {"ORDERFLOW_STATIC_MEMBERSHIP": "false"},
    "static": {},
    "kip848": {"ORDERFLOW_GROUP_PROTOCOL": "consumer"},
}

ASSIGNED = re.compile(r'partitions assigned .*partitions=\[([0-9, ]*)\] starts=\[([^\]]*)\]')
REVOKED = re.compile(r"partitions revoked .*partitions=\[([0-9, ]*)\]")
PROGRESS = re.compile(r"partition progress known partition=(\d+) live_from=(\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()
    except OSError:
        return 0, "down"


def live_partitions(text: str) -> int:
    match = re.match(r"ready: (\d+) partitions live", text)
    return int(match.group(1)) if match else 0


def numbers(text: str) -> list[int]:
    return [int(n) for n in text.replace(" ", "").split(",") if n]


class Run:
    def __init__(self, mode: str, brokers: str, orders: int, down: float):
        self.down = down
        self.mode = mode
        self.dir = Path(tempfile.mkdtemp(prefix=f"rebalance-{mode}-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
        self.env.update(
            ORDERFLOW_BROKERS=brokers,
            ORDERFLOW_TOPIC_PREFIX=f"rb.{mode}.{os.getpid()}.{int(time.time())}.",
            ORDERFLOW_PARTITIONS=str(PARTITIONS),
            ORDERFLOW_DATA_DIR=str(self.dir),
            ORDERFLOW_SESSION_TIMEOUT_MS="6000",
            # The simulator's journeys are dated up to a week and more ahead.
            ORDERFLOW_MAX_FUTURE_SKEW_SECS="2592000",
            RUST_LOG="info",
        )
        self.env.update(MODES[mode])
        self.orders = orders
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = {instance: free_port() for instance in ("0", "1", "2")}

    def log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def spawn(self, binary: str, instance: str, extra: dict[str, str] | None = None) -> None:
        env = dict(self.env, **(extra or {}))
        name = f"{binary}-{instance}"
        with open(self.log(name), "a") as log:
            self.procs[name] = subprocess.Popen(
                [BIN / binary, "--instance", instance], env=env, stdout=subprocess.DEVNULL, stderr=log
            )

    def spawn_state(self, instance: str) -> None:
        self.spawn(
            "orderflow-state",
            instance,
            {"ORDERFLOW_METRICS_LISTEN": f"127.0.0.1:{self.ports[instance]}"},
        )

    def cli(self, *args: str) -> str:
        done = subprocess.run([BIN / "orderflow", *args], env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"orderflow {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def states(self) -> list[tuple[int, str]]:
        return [readyz(self.ports[i]) for i in ("0", "1", "2")]

    def settled(self, limit: float) -> float:
        """Waits until every copy is ready with all partitions live between them for SETTLE
        seconds; returns when that calm began."""
        deadline = time.monotonic() + limit
        calm_since = None
        while time.monotonic() < deadline:
            states = self.states()
            calm = all(status == 200 for status, _ in states) and sum(
                live_partitions(text) for _, text in states
            ) == PARTITIONS
            now = time.monotonic()
            if calm and calm_since is None:
                calm_since = now
            if not calm:
                calm_since = None
            if calm_since is not None and now - calm_since >= SETTLE:
                return calm_since
            time.sleep(0.05)
        sys.exit(f"{self.mode}: the group did not settle within {limit:.0f} s: {self.states()}")

    def owners(self) -> dict[int, str]:
        """Partition -> instance, from the logs (the last assignment of each copy wins)."""
        owner: dict[int, str] = {}
        for instance in ("0", "1", "2"):
            for line in self.log(f"orderflow-state-{instance}").read_text().splitlines():
                if m := REVOKED.search(line):
                    for p in numbers(m.group(1)):
                        if owner.get(p) == instance:
                            del owner[p]
                elif m := ASSIGNED.search(line):
                    for p in numbers(m.group(1)):
                        owner[p] = instance
        return owner

    def churn(self, offsets: dict[str, int]) -> dict[str, int]:
        """Revoked/assigned partitions and records refolded in the logs after `offsets`."""
        revoked = assigned = refolded = 0
        for instance in ("0", "1", "2"):
            text = self.log(f"orderflow-state-{instance}").read_text()[offsets[instance]:]
            starts: dict[int, int] = {}
            for line in text.splitlines():
                if m := REVOKED.search(line):
                    revoked += len(numbers(m.group(1)))
                elif m := ASSIGNED.search(line):
                    parts = numbers(m.group(1))
                    assigned += len(parts)
                    for start in m.group(2).replace('"', "").split(","):
                        if "@" in start:
                            p, offset = start.strip().split("@")
                            if offset.isdigit():
                                starts[int(p)] = int(offset)
                elif m := PROGRESS.search(line):
                    p, live_from = int(m.group(1)), int(m.group(2))
                    if p in starts:
                        refolded += max(0, live_from - starts.pop(p))
        return {"revoked": revoked, "assigned": assigned, "refolded": refolded}

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def measure(self) -> dict:
        self.cli("topics", "create")
        for domain in INTAKES:
            self.spawn(f"orderflow-{domain}", "0")
        for instance in ("0", "1", "2"):
            self.spawn_state(instance)
        self.settled(180)
        # (exits 1, and so this script, unless every order verifies)
        self.cli("simulate", "--orders", str(self.orders), "--tag", f"RB{self.mode}",
                 "--settle-timeout", "600")
        self.settled(300)
        before = self.owners()
        offsets = {i: len(self.log(f"orderflow-state-{i}").read_text()) for i in ("0", "1", "2")}
        stopped_at = time.monotonic()
        restarted = self.procs["orderflow-state-1"]
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=60)
        time.sleep(self.down)
        self.spawn_state("1")
        calm_from = self.settled(300)
        after = self.owners()
        moved = sum(1 for p in range(PARTITIONS) if before.get(p) != after.get(p))
        return {"mode": self.mode, "moved": moved, **self.churn(offsets),
                "unready_s": round(calm_from - stopped_at, 1), "orders": self.orders,
                "down_s": self.down}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--modes", default="eager,cooperative,static,kip848")
    parser.add_argument("--down", type=float, default=0.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for binary in ["orderflow", "orderflow-state", *[f"orderflow-{d}" for d in INTAKES]]:
        if not (BIN / binary).exists():
            sys.exit(f"{BIN / binary} is missing: cargo build --release --locked")
    brokers = os.environ.get("ORDERFLOW_BROKERS") or subprocess.run(
        [ROOT / "scripts" / "kafka.sh", "ensure"], capture_output=True, text=True, check=True
    ).stdout.strip()
    results = []
    for mode in args.modes.split(","):
        run = Run(mode, brokers, args.orders, args.down)
        try:
            results.append(run.measure())
        finally:
            run.stop()
        print(f"rebalance-bench: {results[-1]} (logs in {run.dir})", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    print("| mode | down (s) | partitions moved | revoked | assigned | records refolded | unready (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['down_s']:g} | {r['moved']} | {r['revoked']} | {r['assigned']} | {r['refolded']} | {r['unready_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
