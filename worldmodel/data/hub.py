"""Datasets and weights named by their Hugging Face hub id: ``dataset=lerobot/pusht`` (or
``hf://lerobot/pusht@<revision>``), ``encoder=timm:hf-hub:timm/vit_small_patch14_dinov2.lvd142m``.

An argument that is not an existing local path but reads as ``<org>/<name>`` (optionally ``@<revision>``: a
branch, tag or commit), or any ``hf://`` argument, is a dataset repository on the hub: ``huggingface_hub`` brings
it into its standard cache (``HF_HUB_CACHE`` / ``HF_HOME``) once and answers the cached snapshot after that;
``HF_HUB_OFFLINE=1`` is honoured (the cache alone). A dataset neither cached nor reachable stops in one line
naming the id. Converted copies of hub datasets (``formats.as_native``) go to ``WM_CACHE`` (default
``~/.cache/worldmodel``), not into the hub's cache.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

HUB_ID = re.compile(r"^(?:hf://)?(?:datasets/)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


def hub_id(spec: str | Path) -> tuple[str, str | None] | None:
    """(repo id, revision or None) when ``spec`` names a hub dataset rather than a local path, else None."""
    text = str(spec)
    if not text.startswith("hf://") and (Path(text).exists() or text.startswith((".", "/", "~"))):
        return None
    m = HUB_ID.match(text)
    return (m["repo"], m["rev"]) if m else None


def resolve(spec: str | Path) -> Path:
    """The local folder of ``spec``: itself, or the cached snapshot of the hub dataset it names."""
    named = hub_id(spec)
    if named is None:
        return Path(spec)
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo, rev = named
    try:
        return Path(snapshot_download(repo, repo_type="dataset", revision=rev))
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else "the hub could not be reached"
        raise ValueError(f"dataset={spec}: no such local folder, and hub dataset {repo}{'@' + rev if rev else ''} "
                         f"is not in the hub cache ({constants.HF_HUB_CACHE}) and {why}; download it once online "
                         f"(huggingface-cli download --repo-type dataset {repo}) or give a local path") from None
    except HfHubHTTPError as e:  # unknown repo or revision, gated, ...
        raise ValueError(f"dataset={spec}: no such local folder, and hub dataset {repo}: "
                         f"{str(e).splitlines()[0]}") from None


class NotCached(ValueError):
    """A hub file that is not in the cache while the hub cannot be asked (offline, or unreachable)."""


def model_file(spec: str, filename: str) -> Path:
    """A file of the hub model repository ``spec`` (``<org>/<name>[@revision]``), through the cache."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    m = HUB_ID.match(spec.removeprefix("hf-hub:"))
    if not m:
        raise ValueError(f"hub model {spec!r}: expected <org>/<name> or <org>/<name>@<revision>")
    repo, rev = m["repo"], m["rev"]
    try:
        return Path(hf_hub_download(repo, filename, revision=rev))
    except LocalEntryNotFoundError:  # (a subclass of EntryNotFoundError: first)
        why = "HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else "the hub could not be reached"
        raise NotCached(f"hub model {repo}{'@' + rev if rev else ''}: {filename} is not in the hub cache "
                         f"({constants.HF_HUB_CACHE}) and {why}; download it once online "
                         f"(huggingface-cli download {repo})") from None
    except EntryNotFoundError:
        raise FileNotFoundError(f"hub model {repo}: has no {filename}") from None
    except HfHubHTTPError as e:  # unknown repo or revision, gated, ...
        raise ValueError(f"hub model {repo}: {str(e).splitlines()[0]}") from None


def converted_copy(source: Path) -> Path:
    """Where the converted worldmodel copy of ``source`` goes: beside it, or under ``WM_CACHE`` for a snapshot
    in the hub's cache (``.../datasets--org--name/snapshots/<commit>``)."""
    if source.parent.name == "snapshots" and source.parent.parent.name.startswith("datasets--"):
        root = Path(os.environ.get("WM_CACHE", Path.home() / ".cache" / "worldmodel"))
        return root / f"{source.parent.parent.name}--{source.name[:12]}.wm"
    return source.with_name(source.name + ".wm")


def first_model_file(spec: str, filenames: tuple[str, ...]) -> Path:
    """The first of ``filenames`` the hub model repository ``spec`` has (offline: the first one cached); when none
    is, the first one's error."""
    errors: list[Exception] = []
    for name in filenames:
        try:
            return model_file(spec, name)
        except (FileNotFoundError, NotCached) as e:
            errors.append(e)
    raise errors[0]
