#!/usr/bin/env python3
"""Where a request's CPU goes, by stage of the platform, from a perf profile of `refract`.

Reads `perf script -F comm,ip,sym` output (a `perf record --call-graph dwarf` profile, as
`PROFILE=dir bash tests/benches/peers.sh` records) on stdin or from a file, and puts each sample
in one stage: the innermost frame of the call chain that names a stage (the sandboxed run, the
run's report, the runtime's webhook handler, the gateway, the history writes, the broker, ...),
else the HTTP server or the async runtime, else the thread's name. Prints the share of samples
per stage, largest first, and with --leaves the hottest leaf functions of each stage.

    perf script -i /tmp/prof/component.data -F comm,ip,sym --no-inline | python3 tests/benches/stages.py
"""

import argparse
import collections
import re
import sys

# (stage, pattern on a frame's symbol), tried from the leaf outward: the first frame that
# matches any stage decides. Order matters only within one frame.
STAGES = [
    ("sandbox (refract_host::Host::run)", r"refract_host::run::Host::run\b"),
    ("run report (runtime.automations.executed)", r"refract_runtime::report::Reports::executed"),
    ("run announcement (runtime.interactions.triggered)", r"refract_runtime::report::Reports::announce"),
    ("executor (secrets, throttle, config, limits)", r"refract_runtime::executor::|refract_runtime::http::spawn_run"),
    ("runtime webhook handler", r"refract_runtime::http::"),
    ("runtime event workers", r"refract_runtime::workers"),
    ("runtime other", r"refract_runtime::"),
    ("gateway (edge, auth, forward)", r"refract_gateway::"),
    ("events: history ingest", r"refract_events::ingest"),
    ("events: live fan-out", r"refract_events::live"),
    ("events other", r"refract_events::"),
    ("history writes (SQLite)", r"sqlx_sqlite|sqlite3|refract_storage::sqlite"),
    ("history (PostgreSQL client)", r"sqlx_postgres|refract_storage::postgres"),
    ("broker", r"refract_broker::"),
    ("HTTP server (hyper, axum, tower)", r"hyper::|hyper_util::|axum::|tower::"),
    ("async runtime (tokio)", r"tokio::"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in STAGES]


def samples(lines):
    """Yields (thread, [frames leaf first]) from perf script's text."""
    thread, frames = None, []
    for line in lines:
        if not line.strip():
            if thread is not None:
                yield thread, frames
            thread, frames = None, []
        elif not line[0].isspace():
            thread, frames = (line.split() or ["?"])[0], []
        else:
            parts = line.strip().split(" ", 1)
            if len(parts) == 2:
                frames.append(parts[1])
    if thread is not None:
        yield thread, frames


def stage_of(thread, frames):
    for frame in frames:
        for name, pattern in COMPILED:
            if pattern.search(frame):
                return name
    return f"other ({thread})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("script", nargs="?", default="-", help="perf script output (default stdin)")
    parser.add_argument("--leaves", type=int, default=0, help="hottest leaf functions per stage")
    args = parser.parse_args()
    source = sys.stdin if args.script == "-" else open(args.script, errors="replace")
    by_stage = collections.Counter()
    leaves = collections.defaultdict(collections.Counter)
    total = 0
    for thread, frames in samples(source):
        total += 1
        stage = stage_of(thread, frames)
        by_stage[stage] += 1
        leaves[stage][frames[0] if frames else "?"] += 1
    if total == 0:
        sys.exit("no samples: give perf script output of a profile with call graphs")
    print(f"| stage | share of samples ({total}) |")
    print("|---|---|")
    for stage, count in by_stage.most_common():
        print(f"| {stage} | {100 * count / total:.1f}% |")
        for leaf, n in leaves[stage].most_common(args.leaves):
            print(f"|   {leaf[:110]} | {100 * n / total:.2f}% |")


if __name__ == "__main__":
    main()
