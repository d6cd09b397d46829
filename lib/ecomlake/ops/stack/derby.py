"""Apache Derby, the DRDA stand-in for the DB2 production warehouse (see README, "The DB2 path")."""
from __future__ import annotations

import logging
from pathlib import Path

from ecomlake.config import PROJECT_ROOT, Config
from ecomlake.ops.stack.base import Server, ensure_os_user, run, write_private

# the package's logger, named as before the split: log lines still say ecomlake.ops.stack
log = logging.getLogger(__package__)


def properties_value(value: str) -> str:
    """A value for a Java .properties file (Derby's), escaped so it reads back unchanged."""
    out = value.replace("\\", "\\\\")
    for ch in "=:#!":
        out = out.replace(ch, "\\" + ch)
    out = out.replace("\n", "\\n").replace("\r", "\\r")
    return "\\ " + out[1:] if out.startswith(" ") else out


class Derby(Server):
    """Apache Derby 10.8 network server: the DRDA stand-in for DB2 (stack/derby/pom.xml).
    Runs as the `ecomlake-derby` OS user, with authentication on: the DB2 user and its password
    (from stack.env) are in derby.properties, mode 600, readable by that user only."""
    OS_USER = "ecomlake-derby"

    def __init__(self, cfg: Config):
        super().__init__("derby", "DB2 production warehouse (DRDA stand-in)", cfg.db2.host,
                         cfg.db2.port, cfg.stack_dir)
        self.cfg = cfg

    @property
    def jar_dir(self) -> Path:
        return self.home / "jars" / "derby"

    def install(self) -> None:
        if not list(self.jar_dir.glob("derbynet-*.jar")):
            run(["mvn", "-q", "-f", str(PROJECT_ROOT / "stack" / "derby" / "pom.xml"),
                 "dependency:copy-dependencies", f"-DoutputDirectory={self.jar_dir}"])

    @property
    def classpath(self) -> str:
        return ":".join(str(p) for p in sorted(self.jar_dir.glob("derby*.jar")))

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "derby.properties"    # read by the server when it starts

    def write_properties(self, password: str) -> bool:
        """derby.properties with authentication on and the one user; True if it changed."""
        d = self.cfg.db2
        return write_private(self.properties_file, (
            "derby.connection.requireAuthentication=true\n"
            "derby.authentication.provider=BUILTIN\n"
            f"derby.user.{d.user}={properties_value(password)}\n"
            # users other than the database owner may not read or write it
            "derby.database.defaultConnectionMode=noAccess\n"
            f"derby.database.fullAccessUsers={d.user}\n"), self.OS_USER)

    def init(self) -> None:
        # Create the database with Derby's own embedded driver: JCC cannot pass `create=true`.
        # ij reads the URL, user and password from stdin, never from its arguments.
        d = self.cfg.db2
        if (self.data_dir / d.database / "service.properties").exists():
            return
        self.write_properties(self._password)
        quoted = self._password.replace("'", "''")
        run(["java", f"-Dderby.system.home={self.data_dir}", "-cp", self.classpath,
             "org.apache.derby.tools.ij"], user=self.OS_USER, cwd=self.data_dir,
            input=f"connect 'jdbc:derby:{d.database};create=true' user '{d.user}' "
                  f"password '{quoted}';\nexit;\n")

    def up(self, secrets_: dict[str, str]) -> str:
        self._password = secrets_[self.cfg.db2.password_env]
        return super().up(secrets_)

    def provision(self, secrets_: dict[str, str]) -> None:
        ensure_os_user(self.OS_USER)
        if self.write_properties(secrets_[self.cfg.db2.password_env]):
            log.warning("derby: its users (derby.properties) changed; Derby reads them when it "
                        "starts (`ecomlake stack down` then `up`)")

    def start(self) -> None:
        self.write_properties(self._password)
        # -noSecurityManager: the default policy looks for a jar named exactly derbynet.jar.
        # bootAll: open the database when the server starts, not on the first client's login
        # (booting it then can outlast the client's login timeout on a busy machine).
        self.spawn(["java", "-Xmx512m", f"-Dderby.system.home={self.data_dir}",
                    "-Dderby.system.bootAll=true",
                    "-cp", self.classpath, "org.apache.derby.drda.NetworkServerControl",
                    "start", "-h", self.host, "-p", str(self.port), "-noSecurityManager"],
                   cwd=self.data_dir)
