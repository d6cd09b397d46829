"""FerretDB, the MongoDB catalog source (database `catalog`), SQLite backend."""
from __future__ import annotations

import logging
from pathlib import Path

from ecomlake.config import PROJECT_ROOT, Config
from ecomlake.ops.stack.base import Server, run

# the package's logger, named as before the split: log lines still say ecomlake.ops.stack
log = logging.getLogger(__package__)


class FerretDB(Server):
    """FerretDB 1.24 built from the Go module proxy by stack/ferretdb (our own tiny main).
    Runs as the `ecomlake-ferretdb` OS user; on SQLite it has no authentication (loopback only)."""
    OS_USER = "ecomlake-ferretdb"

    def __init__(self, cfg: Config):
        super().__init__("ferretdb", "MongoDB catalog source", cfg.mongo.host, cfg.mongo.port,
                         cfg.stack_dir)
        self.cfg = cfg

    @property
    def binary(self) -> Path:
        return self.home / "bin" / "ferretdb"

    def install(self) -> None:
        if self.binary.exists():
            return
        log.info("building FerretDB with Go (first time only)")
        run(["go", "build", "-trimpath", "-o", str(self.binary), "."], cwd=PROJECT_ROOT / "stack" / "ferretdb",
            env={"CGO_ENABLED": "0"})

    def start(self) -> None:
        self.spawn([str(self.binary), f"--listen-addr={self.address}",
                    f"--sqlite-dir={self.data_dir}", "--log-level=warn"])
