"""wm pipeline: the smoke chain end to end, the report, stage reuse by fingerprint, and re-running exactly the
stages a changed config affects."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from worldmodel.pipeline import pixel_shared, task_overrides
from worldmodel.stages import fingerprint


def test_task_overrides_and_fingerprint_masking(tmp_path):
    ovr = ["steps=3", "TwoRoom:episodes=9", "PointReach:episodes=5", "env.kwargs={a: 1}"]
    assert task_overrides(ovr, "TwoRoom") == ["steps=3", "episodes=9", "env.kwargs={a: 1}"]
    assert task_overrides(ovr, None) == ["steps=3", "env.kwargs={a: 1}"]
    a, b = tmp_path / "a", tmp_path / "b"
    cfg = lambda root: {"out_dir": str(root / "x"), "dataset": str(root / "collect_T"), "steps": 3}  # noqa: E731
    assert fingerprint("train-ac", cfg(a), {"up": "1"}, a) == fingerprint("train-ac", cfg(b), {"up": "1"}, b)
    assert fingerprint("train-ac", cfg(a), {"up": "1"}, a) != fingerprint("train-ac", cfg(a), {"up": "2"}, a)
    assert fingerprint("train-ac", {**cfg(a), "steps": 4}, {}, a) != fingerprint("train-ac", cfg(a), {}, a)
    # the pixel baseline shares train-ac's budget but not its encoder fine-tuning
    assert pixel_shared(["train.steps=5", "finetune.blocks=2", "+finetune.lr_scale=0.1"]) == ["train.steps=5"]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Three runs into one folder: fresh, unchanged (all reused), and a third with a changed drift horizon,
    train_pixel forced (as after a code change) and the latent planning stage "crashed" (marker left at status
    running, no summary)."""
    from helpers import run_json

    out = tmp_path_factory.mktemp("pipeline")
    first = run_json("pipeline", ["preset=smoke", f"out_dir={out}"])
    second = run_json("pipeline", ["preset=smoke", f"out_dir={out}"])
    marker = out / "plan_latent_PointReach" / "fingerprint.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "status": "running"}))
    (out / "plan_latent_PointReach" / "summary.json").unlink()
    third = run_json("pipeline", ["preset=smoke", f"out_dir={out}", "drift.overrides=['horizon=2']",
                                     "force=[train_pixel_PointReach]"])
    return out, first, second, third


def test_smoke_pipeline_writes_report_and_summary(smoke_runs):
    out, first, _, _ = smoke_runs
    on_disk = json.loads((out / "summary.json").read_text())
    assert Path(on_disk["report"]).is_file() and Path(on_disk["report_md"]).is_file()
    html = Path(first["report"]).read_text()
    assert "data:image/png;base64" in html and "data:image/gif;base64" in html  # self-contained
    for name in ("collect_PointReach", "pretrain", "train_ac_PointReach", "train_pixel_PointReach",
                 "drift_PointReach", "compare_PointReach", "plan_latent_PointReach", "plan_pixel_PointReach"):
        stage = first["stages"][name]
        assert Path(stage["summary"]).is_file() and stage["seconds"] > 0 and stage["reused"] is False
    drift = first["headline"]["drift"]["PointReach"]
    assert drift["probe_error_latent"] is not None and drift["probe_error_pixel"] is not None
    assert drift["probe_error_pixel_direct"] is not None and drift["pixel_error"] is not None
    for model in ("latent", "pixel", "latent_random_encoder"):  # the energy landscape of every model
        assert -1 <= drift[f"landscape_rank_corr_{model}"] <= 1
        assert -1 <= drift[f"landscape_temporal_{model}"] <= 1  # ... under the planner's temporal metric too
    grid = json.loads(Path(first["stages"]["grid_probe"]["summary"]).read_text())["tasks"]["PointReach"]
    labels = json.loads((out / "collect_PointReach" / "manifest.json").read_text())["state_labels"]
    assert list(grid["r2"]) == list(grid["r2_random_init"]) == labels  # every state dim, both encoders
    assert grid["frames_test"] > 0 and "mean_r2_random_init" in first["headline"]["grid_probe"]["PointReach"]
    plan = first["headline"]["plan"]["PointReach"]
    assert 0 <= plan["latent"]["success_rate"] <= 1 and 0 <= plan["pixel"]["success_rate"] <= 1
    # pure rows by default, the oracle beside them, and the encoder ablation; each row says what it saw
    assert plan["latent"]["mode"] == "pure" and plan["latent"]["privileged_inputs"] == []
    assert plan["latent_oracle"]["mode"] == "oracle" and plan["latent_oracle"]["privileged_inputs"]
    assert plan["latent_random_encoder"]["mode"] == "pure"
    assert plan["latent_proprio"]["mode"] == "pure" and plan["latent_proprio"]["privileged_inputs"] == []
    latent_plan = json.loads(Path(first["stages"]["plan_latent_PointReach"]["summary"]).read_text())["protocol"]
    proprio_plan = json.loads(Path(first["stages"]["plan_proprio_PointReach"]["summary"]).read_text())["protocol"]
    assert latent_plan["energy"]["temporal_weight"] > 0 and latent_plan["energy"]["state_weight"] == 0
    assert not latent_plan["subgoals"]["enabled"]
    assert latent_plan["energy_probe"]["temporal"]["labels"].startswith("none")  # fit on frame order alone
    assert proprio_plan["energy"]["state_weight"] > 0 and proprio_plan["energy"]["temporal_weight"] == 0
    assert first["headline"]["drift"]["PointReach"]["probe_error_latent_random_encoder"] is not None
    md = Path(first["report_md"]).read_text()
    assert "| task | model | encoder | mode | inputs | energy | episodes | success | 95% CI | s/step |" in md
    assert "\n| PointReach | latent | pretrained | pure | frames, proprioception, goal image |" in md
    assert "\n| PointReach | pixel | none (pixel patches) | pure | frames, proprioception, goal image |" in md
    assert "\n| PointReach | latent | pretrained | oracle | " in md and "success-criterion dims" in md
    assert "\n| PointReach | latent | random init | pure | frames, proprioception, goal image |" in md
    assert "\n| PointReach | latent, with proprio probe | pretrained | pure | " in md and "temporal-distance" in md


class Outline(HTMLParser):
    """The report's outline: headings, images (src kind) and tables in document order, scripts, visible text."""

    def __init__(self):
        super().__init__()
        self.items: list[tuple[str, str]] = []  # ("h2", text) | ("img", src prefix) | ("table", caption)
        self.text: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("h1", "h2", "h3", "caption"):
            self._open = tag
            self.items.append((tag, ""))
        elif tag == "img":
            self.items.append(("img", (a.get("src") or "")[:15] + " " + (a.get("alt") or "")))
        elif tag in ("table", "script", "link", "iframe"):
            self.items.append((tag, ""))

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        self.text.append(data)
        if self._open:
            kind, text = self.items[-1]
            self.items[-1] = (kind, text + data)


def test_report_leads_with_the_result(smoke_runs):
    """Headline chart and table first, a section per task with GIFs and drift, protocol and timings last as
    tables; self-contained (every image embedded, no script or external file) and no raw JSON."""
    out, first, _, _ = smoke_runs
    page = Outline()
    page.feed(Path(first["report"]).read_text())
    h2 = [t for k, t in page.items if k == "h2"]
    assert h2[0].startswith("Headline") and h2[1] == "PointReach" and h2[-2:] == ["Protocol", "Stage timings"]
    start = page.items.index(("h2", h2[0]))
    kinds = [k for k, _ in page.items[start + 1:]]
    assert kinds[:3] == ["img", "table", "caption"] and "success per task" in page.items[start + 1][1]
    task = page.items[page.items.index(("h2", "PointReach")):page.items.index(("h2", h2[2]))]
    assert any(k == "img" and t.startswith("data:image/gif") for k, t in task)  # planned episodes
    assert ("h3", "Drift: open-loop error vs horizon") in task and any("drift vs horizon" in t for _, t in task)
    assert any(k == "h3" and t.startswith("Encoder ablation") for k, t in task)
    assert all(t.startswith("data:image/") for k, t in page.items if k == "img")
    assert not {"script", "link", "iframe"} & {k for k, _ in page.items}
    text = "".join(page.text)
    assert '{"' not in text and "{'" not in text and "probe_r2[" not in text
    assert all(k != "table" or page.items[i + 1][0] == "caption" for i, (k, _) in enumerate(page.items))  # titled


def test_pipeline_logs_the_headline_table(smoke_runs, tmp_path):
    """logger=tensorboard: every stage reused (where metrics go changes no result), the headline table logged as
    text and each row's success as a scalar."""
    from helpers import run_json
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, first, _, _ = smoke_runs
    again = run_json("pipeline", ["preset=smoke", f"out_dir={out}", "drift.overrides=['horizon=2']",
                                     "logger=tensorboard"])  # the third run's settings
    assert all(s["reused"] for s in again["stages"].values())
    events = EventAccumulator(str(out / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = {tag: events.Scalars(tag)[0].value for tag in events.Tags()["scalars"]}
    plan = again["headline"]["plan"]["PointReach"]
    latent = scalars["headline/PointReach/latent, pretrained encoder (pure)"]
    assert latent == pytest.approx(plan["latent"]["success_rate"])
    assert scalars["headline/PointReach/pixel (pure)"] == pytest.approx(plan["pixel"]["success_rate"])
    text = events.Tensors("headline/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("| task | model | encoder |") and "| PointReach | pixel |" in text


def test_rerun_reuses_every_stage(smoke_runs):
    _, first, second, _ = smoke_runs
    assert all(s["reused"] for s in second["stages"].values()), second["stages"]
    assert second["seconds_this_run"] < first["seconds_this_run"]
    assert second["headline"] == first["headline"]


def test_changed_forced_and_crashed_stages_rerun_with_their_downstream(smoke_runs):
    _, _, _, third = smoke_runs
    rerun = {name for name, s in third["stages"].items() if not s["reused"]}
    # forced train_pixel -> its downstream (drift, compare, plan_pixel); changed drift; crashed plan_latent
    assert rerun == {"train_pixel_PointReach", "drift_PointReach", "compare_PointReach", "plan_pixel_PointReach",
                     "plan_latent_PointReach", "drift_random_PointReach"}
    assert third["headline"]["drift"]["PointReach"]["horizon"] == 2


def test_report_shows_the_robustness_tables(tmp_path):
    """A table scripts/robustness.py wrote under <run>/robustness/<task>/ appears in the report, cell by cell; a
    broken table fails in one line naming its file."""
    from worldmodel.contracts.records import to_dict
    from worldmodel.contracts.robustness import RobustnessCell, RobustnessTable, load_table
    from worldmodel.evaluation.report import build_report

    cells = [RobustnessCell("latent", "nominal", {}, {}, 0.8, [0.58, 0.92]),
             RobustnessCell("latent", "floor colour", {"floor_rgb": [0.45, 0.6, 0.85]}, {}, 0.1, [0.03, 0.3]),
             RobustnessCell("pixel", "nominal", {}, {}, 0.25, [0.11, 0.47])]
    path = tmp_path / "robustness" / "PointReach" / "table.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(to_dict(RobustnessTable("PointReach", 20, 100000, cells))))
    md = Path(build_report(tmp_path, [], [])["md"]).read_text()
    assert "Robustness" in md and "| latent | 80% [58%, 92%] | 10% [3%, 30%] |" in md
    assert "| pixel | 25% [11%, 47%] | — |" in md
    assert (tmp_path / "report_assets" / "robustness_PointReach.png").is_file()
    path.write_text(json.dumps({"task": "PointReach", "episodes": "many"}))
    with pytest.raises(ValueError, match="table.json: robustness table"):
        load_table(path)
