"""Write constraints.txt: the exact versions of worldmodel's dependency closure (with the dev, tensorboard and
wandb extras) as installed in this environment — the versions the results were measured with.

    python scripts/lock.py            # after bash scripts/setup.sh; rewrites constraints.txt

``scripts/setup.sh`` (and so CI) installs with ``pip install -c constraints.txt``; ``pip install worldmodel`` alone
stays unpinned.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = {"dev", "tensorboard", "wandb"}


def closure(name: str, extras: set[str]) -> dict[str, str]:
    """{canonical name: installed version} of ``name`` and everything it requires (for this interpreter)."""
    seen: dict[str, str] = {}
    todo = [(name, extras)]
    while todo:
        pkg, want = todo.pop()
        key = re.sub(r"[-_.]+", "-", pkg).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(pkg)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement for another platform or Python
        seen[key] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in (want or {""})]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, set(req.extras)))
    return seen


def main() -> None:
    pins = closure("worldmodel", EXTRAS)
    pins.pop("worldmodel", None)
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    head = (f"# Versions worldmodel's results were measured with (Python {sys.version_info.major}."
            f"{sys.version_info.minor}); written by scripts/lock.py, installed by scripts/setup.sh.\n")
    (ROOT / "constraints.txt").write_text(head + "\n".join(lines) + "\n")
    print(f"constraints.txt: {len(lines)} pins")


if __name__ == "__main__":
    main()
