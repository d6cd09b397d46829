"""The one builder of the zip that `--py-files` ships to Spark's driver and executors: the runtime
package (lib/ecomlake) without the operations tooling (ecomlake.ops) and without bytecode caches.
Used by spark-submit.sh (`python -m ecomlake.ops.pyzip <zip>`) and by the Airflow DAGs'
`package_lib` task. Standard library only: Airflow's virtualenv imports it too.

The zip is written beside its target and renamed into place, so a spark-submit still reading an
older zip of the same name never sees half a new one (Python reads zips lazily).
"""
from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

LIB = Path(__file__).resolve().parents[2]          # lib/
EXCLUDED = ("ecomlake/ops/",)                      # tooling: never needed on a cluster


def members(lib: Path = LIB) -> list[Path]:
    """The files of the runtime package, relative to lib/, in a stable order."""
    out = []
    for p in sorted((lib / "ecomlake").rglob("*")):
        rel = p.relative_to(lib)
        if p.is_file() and "__pycache__" not in rel.parts and p.suffix != ".pyc" \
                and not rel.as_posix().startswith(EXCLUDED):
            out.append(rel)
    return out


def build(target: Path | str, lib: Path = LIB) -> str:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in members(lib):
            z.write(lib / rel, rel.as_posix())
    os.replace(tmp, target)
    return str(target)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ecomlake.ops.pyzip <target.zip>")
    print(build(sys.argv[1]))
