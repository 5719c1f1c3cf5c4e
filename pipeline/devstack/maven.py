"""Fetch Kafka and Cassandra jars from Maven Central once, into the state folder's cache."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import CliError

__all__ = ["OPS_DIR", "fetch_libs"]

# The Maven projects declaring what to download live in the repository's ops/ folder.
OPS_DIR = Path(__file__).resolve().parents[2] / "ops"

_MARKER = ".complete"


def fetch_libs(component: str, version: str, cache_dir: Path, *,
               say: Callable[[str], None] = print) -> Path:
    """Jars of ``component`` (``kafka`` or ``cassandra``) at ``version``; downloads only once."""
    libs = cache_dir.resolve() / f"{component}-{version}" / "libs"
    if shutil.which("java") is None:
        raise CliError("`java` not found: install a Java 17 runtime "
                       "(apt-get install openjdk-17-jre)")
    if (libs / _MARKER).exists():
        return libs
    pom = OPS_DIR / component / "pom.xml"
    if not pom.exists():
        raise CliError(f"{pom} is missing (camlog dev needs the source checkout's ops/ folder)")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise CliError("`mvn` not found: install Maven (apt-get install maven) and Java 17")
    if libs.exists():
        shutil.rmtree(libs)  # an interrupted earlier download
    say(f"fetching {component} {version} from Maven Central into {libs} (first time only) ...")
    started = time.monotonic()
    cmd = [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
           f"-Dlibs.dir={libs}", f"-D{component}.version={version}"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise CliError(f"fetching {component} {version} failed:\n{tail}")
    jars = list(libs.glob("*.jar"))
    (libs / _MARKER).write_text(f"{len(jars)} jars\n")
    say(f"  {len(jars)} jars in {time.monotonic() - started:.0f}s")
    return libs
