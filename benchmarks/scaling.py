"""Section 4: how query-all's time grows with the number of suffix tables and of databases.

The same rows are loaded into every layout: suffix_count 8, 32, 128 and 512 over 4 databases,
and suffix_count 32 over 1, 2, 4 and 8 databases (8 entries in each), plus the one-table
database as the reference. All layouts are loaded first, then every (layout, query) pair is
timed in one interleaved loop, so background noise spreads evenly over the curves. The plot is
written next to docs/benchmarks.md.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import dataset
import pg
from harness import Context, SectionResult, Stats, interleaved, log, ratio, table, timed
from query_bench import QUERIES, Rows, one_table_rows

SUFFIX_COUNTS = (8, 32, 128, 512)
DATABASE_COUNTS = (1, 2, 4, 8)
FIXED_DATABASES = 4
FIXED_SUFFIXES = 32
ENTRIES = 8
PLOT_NAME = "benchmarks-scaling.png"


def layouts() -> list[tuple[int, int]]:
    """(suffix_count, databases) pairs, each once."""
    pairs = [(s, FIXED_DATABASES) for s in SUFFIX_COUNTS]
    pairs += [(FIXED_SUFFIXES, d) for d in DATABASE_COUNTS if d != FIXED_DATABASES]
    return pairs


def run(ctx: Context) -> SectionResult:
    from shardctl.query import query_all
    from shardctl.validate import load_topology

    users = 50_000 if ctx.quick else 250_000
    repeats = ctx.repeats(5, 2)
    rows = dataset.generate(users)
    jobs = {}
    with ExitStack() as stack:
        (single,) = stack.enter_context(pg.scratch_databases("scale1", 1))
        dataset.load_single(rows, ctx.workdir / "one", single)
        for query in QUERIES:
            jobs[(0, 0, query.name)] = timed(lambda q=query: one_table_rows(single, q.sql))
        for suffix_count, databases in layouts():
            log(f"scaling: loading {users:,} users into {suffix_count} suffixes × "
                f"{databases} databases")  # fmt: skip
            names = stack.enter_context(
                pg.scratch_databases(f"scale{suffix_count}x{databases}", databases)
            )
            layout = dataset.load_sharded(rows, ctx.workdir / f"{suffix_count}x{databases}",
                                          names, suffix_count, ENTRIES)  # fmt: skip
            topology, _ = load_topology(layout.config_dir, dataset.ENV, connecting=True)
            for query in QUERIES:

                def job(t=topology, q=query) -> Rows:  # type: ignore[no-untyped-def]
                    with query_all(t, q.sql) as result:
                        return list(result.rows)

                jobs[(suffix_count, databases, query.name)] = timed(job)
        log(f"scaling: {len(jobs)} jobs × {repeats} runs, interleaved")
        stats = interleaved(jobs, repeats)  # type: ignore[arg-type]
    _plot(stats, ctx.output.with_name(PLOT_NAME))
    return _report(stats, users, len(rows.posts), repeats)


def _report(stats: dict[tuple[int, int, str], Stats], users: int, posts: int,
            repeats: int) -> SectionResult:  # fmt: skip
    header = ["query", "one table"]
    header += [f"{s} suffixes × {FIXED_DATABASES} dbs" for s in SUFFIX_COUNTS]
    header += [f"{FIXED_SUFFIXES} suffixes × {d} db{'s' * (d > 1)}" for d in DATABASE_COUNTS]
    rows = []
    for query in QUERIES:
        one = stats[(0, 0, query.name)].median
        row = [query.name, f"{one * 1e3:.0f}"]
        for key in [(s, FIXED_DATABASES) for s in SUFFIX_COUNTS] + [
            (FIXED_SUFFIXES, d) for d in DATABASE_COUNTS
        ]:
            value = stats[(*key, query.name)].median
            row.append(f"{value * 1e3:.0f} ({ratio(value, one)})")
        rows.append(row)
    note = (
        f"{users:,} users and {posts:,} posts in every layout, {ENTRIES} entries; in-process "
        f"`query_all()` median ms (× the one-table time), {repeats} interleaved runs after a "
        f"warm-up round, each run connecting afresh. The plot is `{PLOT_NAME}` (log scales; "
        "dotted lines: one table)."
    )
    data = {"|".join(map(str, k)): s.as_dict() for k, s in stats.items()}
    return SectionResult(f"{note}\n\n{table(header, rows)}\n\n![scaling]({PLOT_NAME})", [], data)


def _plot(stats: dict[tuple[int, int, str], Stats], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    for query in QUERIES:
        one = stats[(0, 0, query.name)].median * 1e3
        line = left.plot(SUFFIX_COUNTS, [stats[(s, FIXED_DATABASES, query.name)].median * 1e3
                                         for s in SUFFIX_COUNTS], marker="o",
                         label=query.name)[0]  # fmt: skip
        right.plot(DATABASE_COUNTS, [stats[(FIXED_SUFFIXES, d, query.name)].median * 1e3
                                     for d in DATABASE_COUNTS], marker="o",
                   color=line.get_color())  # fmt: skip
        for axis in (left, right):
            axis.axhline(one, color=line.get_color(), linestyle=":", linewidth=1)
    left.set_xscale("log", base=2)
    left.set_xticks(SUFFIX_COUNTS, [str(s) for s in SUFFIX_COUNTS])
    left.set_xlabel(f"suffix_count ({FIXED_DATABASES} databases)")
    right.set_xscale("log", base=2)
    right.set_xticks(DATABASE_COUNTS, [str(d) for d in DATABASE_COUNTS])
    right.set_xlabel(f"physical databases (suffix_count {FIXED_SUFFIXES})")
    left.set_ylabel("query-all median ms (dotted: one table)")
    left.set_yscale("log")
    figure.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
    figure.suptitle("shardctl query-all on PostgreSQL: time vs suffix tables and databases")
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
