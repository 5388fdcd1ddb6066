"""Run the shardctl benchmarks and write docs/benchmarks.md.

    .venv/bin/python benchmarks/run.py [--quick] [--only SECTION ...] [--output PATH]

Each section replaces its own generated block in the output file (between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``); the prose around the blocks is kept, so
``--only`` refreshes one section and leaves the others as they were. Raw numbers go to a JSON file
next to this script (``results.json``, or ``PATH.json`` for another ``--output``); the summary of
targets is rebuilt from it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import bulk_route
import migrate_bench
import query_bench
import scaling
import startup
import validate_large
from harness import REPO, Context, SectionResult, load_average, log, machine, table

SECTIONS: dict[str, ModuleType] = {
    "startup": startup,
    "route": bulk_route,
    "validate": validate_large,
    "migrate": migrate_bench,
    "query": query_bench,
    "scaling": scaling,
}
TITLES = {
    "startup": "1. Start-up",
    "route": "2. Bulk routing",
    "query": "3. query-all on PostgreSQL",
    "scaling": "4. Scaling of query-all",
    "migrate": "5. migrate on PostgreSQL",
    "validate": "6. validate on a large config",
}
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Smaller sizes and fewer repeats.")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        metavar="SECTION",
        help=f"Run only these sections ({', '.join(SECTIONS)}); repeatable.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="Markdown file to update (default docs/benchmarks.md).",
    )
    args = parser.parse_args()  # fmt: skip
    names = args.only or list(SECTIONS)
    output: Path = args.output.resolve()
    results_file = (
        Path(__file__).with_name("results.json")
        if output == DEFAULT_OUTPUT
        else output.with_suffix(".json")
    )
    results: dict[str, Any] = json.loads(results_file.read_text()) if results_file.exists() else {}
    document = output.read_text() if output.exists() else ""
    facts = machine()
    results["machine"] = facts
    document = replace_block(document, "machine", machine_block(facts))
    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="shardctl-bench-"))
    failed: list[str] = []
    try:
        for name in names:
            ctx = Context(quick=args.quick, workdir=workdir / name, output=output)
            ctx.workdir.mkdir()
            load_before = load_average()
            started = time.perf_counter()
            try:
                result: SectionResult = SECTIONS[name].run(ctx)
            except Exception:  # noqa: BLE001 - one broken section must not lose the others
                failed.append(name)
                log(f"{name}: FAILED, its block is left as it was\n{traceback.format_exc()}")
                continue
            seconds = time.perf_counter() - started
            stamp = (
                f"_Measured {time.strftime('%Y-%m-%d %H:%M')}, "
                f"{'`--quick`' if args.quick else 'full'} run, 1-minute load "
                f"{load_before:.2f} at the start, section took {seconds:.0f} s._"
            )
            results[name] = {
                "quick": args.quick,
                "verdicts": [v.as_dict() for v in result.verdicts],
                "data": result.data,
            }
            document = replace_block(document, name, f"{stamp}\n\n{result.markdown}")
            document = replace_block(document, "summary", summary_block(results))
            output.write_text(document)
            results_file.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
            log(f"{name}: done in {seconds:.0f} s → {output}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        log(f"failed sections: {', '.join(failed)}")
    return 1 if failed else 0


def replace_block(document: str, name: str, body: str) -> str:
    """Put ``body`` between the markers of block ``name``; a missing block is appended."""
    block = f"<!-- bench:{name} -->\n{body.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document)
    title = TITLES.get(name, name.capitalize())
    return f"{document.rstrip()}\n\n## {title}\n\n{block}\n"


def machine_block(facts: dict[str, str]) -> str:
    rows = [[key, value] for key, value in facts.items()]
    return table(["", "value"], rows)


def summary_block(results: dict[str, Any]) -> str:
    rows = []
    for name in TITLES:
        section = results.get(name)
        if not section:
            rows.append([TITLES[name], "not run yet", "", ""])
            continue
        quick = " (quick run)" if section["quick"] else ""
        for verdict in section["verdicts"]:
            rows.append([TITLES[name] + quick, verdict["target"], verdict["measured"],
                         "✅ met" if verdict["met"] else "❌ not met"])  # fmt: skip
        if not section["verdicts"]:
            rows.append([TITLES[name] + quick, "(no target measured)", "", ""])
    return table(["section", "target", "measured", ""], rows)


if __name__ == "__main__":
    sys.exit(main())
