"""Self-describing checkpoints: written atomically, read without unpickling code.

A checkpoint is a plain dict ``{"kind", "config", "model", "extra", "step", "optimizer", "scheduler", "rng"}``
holding only tensors, numbers, strings, lists and dicts, so ``torch.load(weights_only=True)`` opens it and
opening a checkpoint never runs pickled code. Any stage loads the previous one by path alone: ``config`` is the
whole command config that produced it.
"""
from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodel.utils.atomic import atomic_path


def content_digest(obj) -> str:
    """sha1 of the content of nested dicts/lists of tensors, numbers and strings (keys sorted): equal for equal
    weights, whichever file or run they were saved in (``torch.save`` bytes carry a random serialization id)."""
    h = hashlib.sha1()

    def feed(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                h.update(f"K{k}".encode())
                feed(x[k])
        elif isinstance(x, list | tuple):
            h.update(f"L{len(x)}".encode())
            for v in x:
                feed(v)
        else:
            h.update(f"V{x!r}".encode())

    feed(obj)
    return h.hexdigest()


def save_checkpoint(path: str | Path, ckpt: dict) -> Path:
    """Write ``ckpt`` to ``path`` via a temp file + rename: a kill mid-write leaves the previous file intact.
    Serialized in memory first, so a full disk surfaces as the OS's own error (``DiskFullError``), not as an
    error of torch's zip writer (and the archive's inner folder is ``archive``, not the temp file's name)."""
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getbuffer())
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``); errors name the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated file, foreign pickle, ...
        raise ValueError(f"checkpoint {path}: cannot be read safely ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"checkpoint {path}: not a worldmodel checkpoint (expected a dict with 'model' and 'config')")
    return ckpt


def _lookup(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return _MISSING
        d = d[part]
    return d


_MISSING = object()


def check_matches(ckpt_cfg: dict, expected: dict, fields: list[str], path: str | Path, hint: str = "") -> None:
    """Raise ValueError naming the first dotted field whose value differs between a checkpoint and a config."""
    tail = f"; {hint}" if hint else ""
    for field in fields:
        got, want = _lookup(ckpt_cfg, field), _lookup(expected, field)
        if want is _MISSING:
            continue
        if got is _MISSING:
            raise ValueError(f"checkpoint {path}: has no field {field}, config expects {want!r}{tail}")
        if got != want:
            raise ValueError(f"checkpoint {path}: field {field} is {got!r}, config expects {want!r}{tail}")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted key: leaf value}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def changed_fields(old: dict, new: dict, allowed: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ between two configs, except ``allowed`` ones (and keys below them)."""
    a, b = flatten(old), flatten(new)
    keys = sorted(set(a) | set(b))
    free = lambda k: any(k == p or k.startswith(p + ".") for p in allowed)  # noqa: E731
    return [k for k in keys if not free(k) and a.get(k, _MISSING) != b.get(k, _MISSING)]


def load_weights(module: torch.nn.Module, state: dict, path: str | Path, what: str = "model") -> None:
    """``module.load_state_dict(state)``; weights that do not fit the module built from the checkpoint's own
    config (e.g. written by an older layout) fail with a message naming the checkpoint, not a traceback."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path}: {what} weights do not match its config.model "
                         f"({str(e).splitlines()[0]}); it was written by another layout, retrain it") from e


def rng_state(device: torch.device | str = "cpu") -> dict:
    """Capture python, numpy and torch RNG states as weights_only-loadable objects, plus the RNG of ``device``
    when it is an accelerator (the device the run's model lives on)."""
    np_state = np.random.get_state()
    state = {
        "python": _to_lists(random.getstate()),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    device = torch.device(device)
    if device.type != "cpu":  # the model's accelerator, whichever backend it is
        state["device"] = {"type": device.type, "rng": torch.get_device_module(device).get_rng_state(device)}
    return state


def set_rng_state(state: dict, device: torch.device | str = "cpu") -> None:
    """Restore what :func:`rng_state` captured; the accelerator RNG goes to ``device`` (the run's model device)."""
    random.setstate(_to_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    device = torch.device(device)
    saved = state.get("device")  # restored only onto the same kind of device it was saved from
    if saved is not None and saved["type"] == device.type:
        torch.get_device_module(device).set_rng_state(saved["rng"], device)


def plain_copy(obj):
    """JSON-like copy of ``obj`` (dicts, lists, arrays -> lists) that ``torch.load(weights_only=True)`` reads back."""
    if isinstance(obj, dict):
        return {str(k): plain_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain_copy(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, tuple | list) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x
