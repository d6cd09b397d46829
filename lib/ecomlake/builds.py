"""What each derived part of the lake was last built from, so a run rebuilds only what changed.

A build (silver.<table> for a batch, gold, analytics) records the Delta versions of the tables it
read and of the tables it wrote, once it has written them, in <lake>/_state/<build>.json. The
next run computes the same figures before building: when every version (and the batch, and the
rules or files that shape the output) is what the record says, the build is skipped: no read,
no Delta commit. Any change to an input or an output since, by this pipeline or anyone else,
makes the figures differ and the build runs. A record that is missing or unreadable (a run
killed before it wrote one, a lake copied without it) only costs a rebuild, never a wrong skip:
the record is written after the outputs are.

Versions come from the file names in each table's _delta_log (delta.latest_version: a directory
listing, no replay of the log), so checking costs milliseconds per table.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging

from ecomlake.config import Config
from ecomlake.io import delta

log = logging.getLogger(__name__)

STATE_DIR = "_state"


def figures(spark, cfg: Config, reads: list[str], writes: list[str], **shape) -> dict:
    """The versions of the tables a build reads and writes, and what else shapes its output
    (`shape`: the batch id, a hash of the rules, a file's size and time)."""
    return {"reads": {t: delta.latest_version(spark, cfg, t) for t in reads},
            "writes": {t: delta.latest_version(spark, cfg, t) for t in writes},
            "shape": shape}


def code_hash(*modules) -> str:
    """A hash of the source of the modules that shape a build's output: a new release that
    changes them rebuilds what they build."""
    return text_hash("".join(inspect.getsource(m) for m in modules))


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _state_file(cfg: Config, build: str) -> str:
    return f"{cfg.lake_root.rstrip('/')}/{STATE_DIR}/{build}.json"


def recorded(spark, cfg: Config, build: str) -> dict | None:
    text = delta.read_text(spark, _state_file(cfg, build))
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        log.warning("%s: unreadable build record %s: rebuilding", build, _state_file(cfg, build))
        return None


def up_to_date(spark, cfg: Config, build: str, reads: list[str], writes: list[str], *,
               force: bool = False, **shape) -> dict | None:
    """None when `build` must run (or `force`: a full refresh); else its record (every figure as
    the last build left it). Logs which it is and why."""
    if force:
        log.info("%s: building (full refresh)", build)
        return None
    now = figures(spark, cfg, reads, writes, **shape)
    before = recorded(spark, cfg, build)
    if before == now and None not in now["writes"].values():
        log.info("%s: skipped, unchanged since its last build (read %s; wrote %s)", build,
                 _versions(now["reads"]), _versions(now["writes"]))
        return before
    if before is None:
        log.info("%s: building (no record of an earlier build)", build)
    else:
        changed = [t for part in ("reads", "writes") for t in now[part]
                   if before.get(part, {}).get(t) != now[part][t]]
        if before.get("shape") != now["shape"]:
            changed.append("batch or rules")
        log.info("%s: building (changed since its last build: %s)", build,
                 ", ".join(changed) or "the set of tables")
    return None


def record(spark, cfg: Config, build: str, reads: list[str], writes: list[str], **shape) -> None:
    """Record what `build` read and wrote, after it wrote it (a crash before or while writing
    the record only costs a rebuild)."""
    delta.write_text(spark, _state_file(cfg, build),
                     json.dumps(figures(spark, cfg, reads, writes, **shape), sort_keys=True))


def _versions(tables: dict) -> str:
    return ", ".join(f"{t} v{v}" for t, v in tables.items()) or "-"
