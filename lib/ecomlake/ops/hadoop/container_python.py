"""The Python of the YARN containers: a virtualenv at <stack.dir>/hadoop/python that the
daemons' OS user can run, over the project's site-packages."""
from __future__ import annotations

import logging
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from ecomlake.ops.hadoop.layout import USER, Layout
from ecomlake.ops.stack import run

# the package's logger, named as before the split: log lines still say ecomlake.ops.hadoop
log = logging.getLogger(__package__)


def ensure_container_python(lay: Layout) -> Path:
    """The Python of the YARN containers, which run as USER: a virtualenv at <hadoop>/python
    whose one .pth line adds the project's site-packages, so that executors import exactly the
    packages the driver does. Its interpreter is one USER can run: the project's own when it is
    reachable, else the system's python3.X of the same minor version (Spark wants driver and
    workers to agree on major.minor). The project's interpreter often is not reachable: pyenv
    keeps it under /root, mode 700, and making /root traversable is not ours to do."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    home = lay.python.parent.parent
    pth = home / "lib" / f"python{version}" / "site-packages" / "ecomlake-venv.pth"
    line = f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
    if lay.python.exists() and pth.exists() and pth.read_text() == line:
        return lay.python
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  shutil.which(f"python{version}"), f"/usr/bin/python{version}",
                  f"/usr/local/bin/python{version}"]
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    for python in dict.fromkeys(c for c in candidates if c and os.path.exists(c)):
        try:
            if run([python, "-c", probe], user=USER).strip() == version:
                break
        except RuntimeError:
            continue
    else:
        raise RuntimeError(f"no Python {version} that the `{USER}` OS user can run (tried "
                           f"{', '.join(c for c in candidates if c)}): YARN containers run as "
                           f"that user. Install Debian's python{version}, or make the project's "
                           "interpreter reachable")
    log.info("container Python: a virtualenv over %s with the project's packages", python)
    shutil.rmtree(home, ignore_errors=True)
    run([python, "-m", "venv", "--without-pip", str(home)])
    pth.write_text(line)
    return lay.python
