"""The zip shipped to Spark's driver and executors (--py-files) holds the runtime and nothing of
the operations tooling; the runtime imports from it alone and never reaches for ecomlake.ops."""
import ast
import subprocess
import sys
import zipfile

from ecomlake.config import PROJECT_ROOT
from ecomlake.ops import pyzip

LIB = PROJECT_ROOT / "lib"


def runtime_files():
    """Every file of lib/ecomlake outside ops/, listed here with a plain walk of the folder."""
    out = set()
    for p in (LIB / "ecomlake").rglob("*"):
        rel = p.relative_to(LIB).as_posix()
        if p.is_file() and "__pycache__" not in rel and not rel.startswith("ecomlake/ops/"):
            out.add(rel)
    return out


def test_executor_zip_lists_the_runtime_and_no_operations_module(tmp_path):
    names = zipfile.ZipFile(pyzip.build(tmp_path / "ecomlake.zip")).namelist()
    assert not [n for n in names if n.startswith("ecomlake/ops") or "__pycache__" in n]
    assert set(names) == runtime_files()
    assert {"ecomlake/runner.py", "ecomlake/pipeline.py", "ecomlake/io/delta.py"} <= set(names)
    assert list(tmp_path.iterdir()) == [tmp_path / "ecomlake.zip"]   # no temporary left


def test_runtime_modules_never_import_the_operations_package():
    offenders = []
    for rel in sorted(runtime_files()):
        if not rel.endswith(".py"):
            continue
        for node in ast.walk(ast.parse((LIB / rel).read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if isinstance(node, ast.ImportFrom) and node.module == "ecomlake":
                names += [f"ecomlake.{a.name}" for a in node.names]
            offenders += [f"{rel}: {n}" for n in names if n.startswith("ecomlake.ops")]
    assert offenders == []


def test_the_jobs_import_from_the_zip_alone(tmp_path):
    zip_path = pyzip.build(tmp_path / "ecomlake.zip")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "import ecomlake.runner, ecomlake.pipeline, ecomlake.bronze, ecomlake.silver, "
            "ecomlake.gold, ecomlake.publish, ecomlake.weblog, ecomlake.analytics; "
            "assert ecomlake.runner.__file__.startswith(sys.argv[1]), ecomlake.runner.__file__; "
            "assert not [m for m in sys.modules if m.startswith('ecomlake.ops')]")
    proc = subprocess.run([sys.executable, "-c", code, zip_path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
