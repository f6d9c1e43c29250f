"""`tilec tune --show`: the tuning database as text, with why each winner won."""
from __future__ import annotations

from collections import Counter
from typing import Any

from tilec.tune.database import Entry, TuningDatabase
from tilec.tune.space import Config

BEST_FEW = 3


def _why(reason: str) -> str:
    """A pruning reason without its numbers: 'resource model: registers'."""
    parts = [p.strip() for p in reason.split(":")]
    return ": ".join(parts[:2]) if len(parts) > 1 else parts[0]


def format_entry(entry: Entry) -> str:
    """One entry: its key, the winner, the best few times, what was pruned and why."""
    r: dict[str, Any] = entry.report
    lines = [f"{entry.key.kernel}  key {', '.join(map(str, entry.key.key))}",
             f"  on {entry.key.device}, tilec {entry.key.version}, {r.get('method', '?')}" +
             (f" ({r['timing']})" if r.get("timing") else "")]
    timed = r.get("timed", [])
    seconds = r.get("seconds", {})
    spread = r.get("spread", {})
    total = seconds.get("total")

    def samples(cfg: dict) -> str:
        """' [p10-p90 ms, n samples]' where the report has them."""
        s = spread.get(Config.from_json(cfg).short())
        return f"  [{s[0]:.4f}-{s[1]:.4f}, {s[2]} samples]" if s else ""

    lines.append(f"  winner   {entry.config.short()}" +
                 (f"   {timed[0][1]:.4f} ms{samples(timed[0][0])}" if timed else "") +
                 (f"   (timed {len(timed)} of {r.get('considered', '?')} configurations in "
                  f"{total:.1f} s)" if total is not None and timed else ""))
    for cfg, ms in timed[1:BEST_FEW]:
        ratio = ms / timed[0][1] if timed[0][1] else float("inf")
        lines.append(f"  then     {Config.from_json(cfg).short()}   {ms:.4f} ms  (x{ratio:.2f})"
                     f"{samples(cfg)}")
    refined = r.get("refined", [])
    if refined:
        lines.append(f"  refined  {len(refined)} timed beyond the budget: neighbours of the best "
                     f"(other num_warps / num_stages)" +
                     ("; the winner is one of them" if entry.config.short() in refined else ""))
    pruned = r.get("pruned", {})
    if pruned:
        counts = Counter(_why(v) for v in pruned.values())
        lines.append(f"  pruned   {len(pruned)}: " +
                     ", ".join(f"{n} {why}" for why, n in counts.most_common()))
    failed, mismatched = r.get("failed", {}), r.get("mismatched", [])
    if failed:
        first = next(iter(failed.items()))
        lines.append(f"  failed   {len(failed)} (e.g. {first[0]}: {first[1]})")
    if mismatched:
        lines.append(f"  wrong    {len(mismatched)} gave results unlike the first valid "
                     f"configuration's (e.g. {mismatched[0]})")
    return "\n".join(lines)


def format_database(db: TuningDatabase) -> str:
    entries = list(db.entries())
    if not entries:
        return f"no tuning results in {db.directory()}\n"
    return f"{len(entries)} tuning results in {db.directory()}\n\n" + \
        "\n\n".join(format_entry(e) for e in entries) + "\n"
