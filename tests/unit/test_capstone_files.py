"""The course files the demo and the tests read travel with the repository, byte for byte as
their provenance (data/capstone/README.md) gives them."""
import hashlib
import re
from pathlib import Path

from ecomlake.config import PROJECT_ROOT
from tests.conftest import CAPSTONE


def test_capstone_files_match_their_checksums():
    listed = dict(reversed(line.split(maxsplit=1)) for line in
                  (CAPSTONE / "SHA256SUMS").read_text().splitlines())
    on_disk = {str(p.relative_to(CAPSTONE)) for p in CAPSTONE.rglob("*") if p.is_file()}
    assert on_disk - {"README.md", "SHA256SUMS"} == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((CAPSTONE / name).read_bytes()).hexdigest() == digest, name


def test_readme_provenance_agrees_with_the_checksums():
    # The provenance table is written by hand; it must name the same digests as SHA256SUMS.
    readme = (CAPSTONE / "README.md").read_text()
    listed = dict(reversed(line.split(maxsplit=1)) for line in
                  (CAPSTONE / "SHA256SUMS").read_text().splitlines())
    for row in re.finditer(r"^\| ([\w.]+) \| .* \| ([0-9a-f]{64}) \|$", readme, re.M):
        if row.group(1) in listed:
            assert listed[row.group(1)] == row.group(2), row.group(1)


def test_nothing_reads_outside_the_repository():
    code = [p for d in ("lib", "jobs", "conf", "tests", "airflow_dags", "benchmarks", "notebooks")
            for p in (PROJECT_ROOT / d).rglob("*") if p.is_file() and p.suffix in
            (".py", ".yaml", ".ipynb", ".sh") and p.name != Path(__file__).name]
    offenders = [str(p.relative_to(PROJECT_ROOT)) for p in code
                 if "../shared" in p.read_text(errors="replace")
                 or '"shared"' in p.read_text(errors="replace")]
    assert offenders == []
