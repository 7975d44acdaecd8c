"""``wm data inspect|preview|convert``: look at, picture and convert episode datasets of any supported layout.

    wm data inspect dataset=PATH                  episodes, lengths, keys, shapes, dtypes, action ranges, fps, problems
    wm data preview dataset=PATH out_dir=DIR      preview.png (frames and actions of a few episodes) and preview.gif
    wm data convert dataset=PATH to=lerobot-v3.0 output=PATH

Layouts and the key map (``dataset_keys.image|action|proprio``): :mod:`worldmodel.data.formats`. ``inspect`` reads
metadata and action columns only (no video decoding), so it answers in seconds on large datasets.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import imageio.v2 as imageio
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from worldmodel.config import require  # noqa: E402
from worldmodel.data import formats  # noqa: E402
from worldmodel.data.formats import KeyMap  # noqa: E402
from worldmodel.utils.atomic import atomic_path  # noqa: E402


class Action(StrEnum):
    """What ``wm data`` does."""
    inspect = "inspect"
    preview = "preview"
    convert = "convert"




@dataclass
class DataConfig:
    """``wm data`` settings."""

    action: Action = Action.inspect  # inspect | preview | convert (also the first word: wm data inspect ...)
    dataset: str = ""  # the dataset: a folder or file of any supported layout
    dataset_format: str = "auto"  # auto (detected) | worldmodel | lerobot | hdf5-robomimic | hdf5-episodes
    dataset_keys: KeyMap = field(default_factory=KeyMap)  # which keys are the camera, the actions, the proprio
    to: str = "worldmodel"  # convert: worldmodel | lerobot-v2.1 | lerobot-v3.0 | hdf5-robomimic | hdf5-episodes
    output: str = ""  # convert: where the converted dataset goes
    episodes: int = 4  # preview: episodes shown
    columns: int = 8  # preview: frames per episode in the contact sheet
    out_dir: str = "runs/data"  # summary.json (and the preview files)




def run(cfg: DataConfig) -> dict:
    """Inspect, preview or convert ``cfg.dataset``; returns the summary (the dataset's metadata and what was done)."""
    if not cfg.dataset:
        raise ValueError("wm data needs dataset=PATH")
    keys = KeyMap.of(cfg.dataset_keys)
    info = formats.inspect(cfg.dataset, cfg.dataset_format, keys)
    summary = {"action": cfg.action, **asdict(info), "steps": int(sum(info.lengths)),
               "length_min": min(info.lengths, default=0), "length_max": max(info.lengths, default=0)}
    if cfg.action == "inspect":
        print_info(info)
    elif cfg.action == "convert":
        if not cfg.output:
            raise ValueError("wm data convert needs output=PATH")
        n = formats.convert(cfg.dataset, cfg.output, cfg.to, cfg.dataset_format, keys)
        summary.update(output=str(cfg.output), to=cfg.to, converted=n)
        print(f"[wm data] {n} episodes: {cfg.dataset} ({info.format}) -> {cfg.output} ({cfg.to})")
    else:
        require("episodes", cfg.episodes, 1)
        summary.update(preview(cfg, keys, info))
    return summary


def print_info(info) -> None:
    """Print a dataset's metadata (``wm data inspect``)."""
    lengths = np.asarray(info.lengths)
    print(f"[wm data] {info.path}: {info.format}, {info.episodes} episodes, {lengths.sum()} steps "
          f"(per episode {lengths.min() if len(lengths) else 0}..{lengths.max() if len(lengths) else 0}, "
          f"mean {lengths.mean() if len(lengths) else 0:.1f}), "
          f"{info.fps:g} fps")
    for role, key in info.keys.items():
        print(f"  {role:>7}: {key or '-':<28} {info.shapes.get(key, '')} {info.dtypes.get(key, '')}")
    print(f"  actions: low {np.round(info.action_low, 3).tolist()} high {np.round(info.action_high, 3).tolist()}")
    print(f"  keys: {', '.join(info.all_keys)}")
    for p in info.problems or ["none found"]:
        print(f"  problem: {p}")


def preview(cfg, keys: KeyMap, info) -> dict:
    """Contact sheet (frames and action traces of the first episodes) and a GIF of them side by side."""
    eps = []
    for _, ep in tqdm(formats.read(cfg.dataset, cfg.dataset_format, keys), total=min(cfg.episodes, info.episodes),
                      desc="preview", dynamic_ncols=True):
        eps.append(ep)
        if len(eps) == cfg.episodes:
            break
    cols = int(cfg.columns)
    fig, axes = plt.subplots(len(eps), cols + 1, figsize=(1.4 * cols + 3, 1.5 * len(eps)), squeeze=False,
                             gridspec_kw={"width_ratios": [1] * cols + [2.5]})
    for r, ep in enumerate(eps):
        idx = np.linspace(0, len(ep["frames"]) - 1, cols).round().astype(int)
        for c, t in enumerate(idx):
            axes[r, c].imshow(ep["frames"][t])
            axes[r, c].set_axis_off()
            axes[r, c].set_title(f"t={t}", fontsize=6)
        axes[r, -1].plot(ep["actions"], lw=0.8)
        axes[r, -1].set_title(f"episode {r}: actions", fontsize=7)
        axes[r, -1].tick_params(labelsize=6)
    fig.tight_layout()
    out = Path(cfg.out_dir)
    with atomic_path(out / "preview.png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    T = max(len(ep["frames"]) for ep in eps)
    tiles = [np.concatenate([ep["frames"][min(t, len(ep["frames"]) - 1)] for ep in eps], 1) for t in range(T)]
    with atomic_path(out / "preview.gif") as tmp:
        imageio.mimsave(tmp, tiles, duration=1.0 / max(info.fps, 1.0), loop=0)
    return {"preview_png": str(out / "preview.png"), "preview_gif": str(out / "preview.gif"), "previewed": len(eps)}
