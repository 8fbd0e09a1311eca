"""The package's structure rules, checked on its source: the server's dependencies on the SDK, and
where private aiortc/aioice reaches may live."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "odyssey_sync"
PRIVATE_REACHES = {PACKAGE / "_jitter.py", PACKAGE / "local" / "aiortc_internals.py"}


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.py"))


def test_the_local_server_uses_only_public_sdk_modules() -> None:
    offenders = []
    for path in _modules(PACKAGE / "local"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                names = [node.module] if node.module else [alias.name for alias in node.names]
                offenders += [f"{path.name}: ..{name}" for name in names if name and name.startswith("_")]
    assert not offenders, offenders


def test_private_aiortc_and_aioice_reaches_live_in_one_module_per_side() -> None:
    offenders = []
    for path in _modules(PACKAGE) + _modules(PACKAGE / "local"):
        if path in PRIVATE_REACHES:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                offenders += [f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("aioice")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("aioice", "aiortc.codecs")):
                offenders.append(f"{path.name}: from {node.module}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(
                ("_RTCRtpSender__", "_data_channel_queue", "_outbound_queue", "_sent_queue")
            ):
                offenders.append(f"{path.name}: {node.value!r}")
    assert not offenders, offenders


def test_every_type_ignore_says_why() -> None:
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "# type: ignore" in line:
                reason = line.split("# type: ignore", 1)[1].split("]", 1)[-1]
                if "#" not in reason:
                    unexplained.append(f"{path.relative_to(PACKAGE)}:{number}")
    assert not unexplained, f"a type: ignore needs a '# reason' after it: {unexplained}"
