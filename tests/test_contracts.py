"""Stage contracts are typed: manifests, checkpoint metadata and summaries are read through their dataclasses
(worldmodel/contracts), validated on load with one line naming the file and the field, and round-trip unchanged."""
import ast
import json
import re
from pathlib import Path

import pytest

from worldmodel.contracts.checkpoint_meta import CheckpointMeta, PredictorRecord
from worldmodel.contracts.manifest import EpisodeEntry, Manifest
from worldmodel.contracts.records import to_dict
from worldmodel.contracts.summaries import SUMMARIES, PlanSummary, load_summary, summary_of

ROOT = Path(__file__).resolve().parent.parent
# a value whose name says it holds a contract: reading it by string key bypasses the dataclass
CONTRACT_NAME = re.compile(r"(^|_)(manifest|summary|summaries|meta|resolved|ckpt_cfg|ac_cfg)$")
CHECKPOINT_NAME = re.compile(r"(^|_)(ckpt|checkpoint)$")
META_KEYS = {"config", "kind", "resolved"}  # a checkpoint dict's self-description


def _name(node: ast.AST) -> str:
    """The last name of an expression: ``manifest`` for ``self.model.manifest``, ``ckpt`` for ``ckpt``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def string_key_reads(tree: ast.AST):
    """(line, what) of every read by string key of a contract: ``x["k"]`` / ``x.get("k")`` where x is named like a
    manifest, summary or checkpoint metadata, ``ckpt["config"]``-style reads, and any ``["resolved"]``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            target, key = node.value, node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "get", "pop", "setdefault") and node.args:
            target, key = node.func.value, node.args[0]
        else:
            continue
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            continue
        name = _name(target)
        if CONTRACT_NAME.search(name) or key.value == "resolved" or (
                CHECKPOINT_NAME.search(name) and key.value in META_KEYS):
            yield node.lineno, f"{name}[{key.value!r}]"


def test_the_checker_catches_string_key_reads():
    code = ("m = manifest['env_id']\nn = self.model.manifest.get('resolution')\nc = ckpt['config']\n"
            "r = cfg.get('resolved', {})\ns = summary['success_rate']\nok = manifest.env_id\nd = ep['frames']\n"
            "summary['seconds'] = 1.0\n")
    assert [w for _, w in string_key_reads(ast.parse(code))] == [
        "manifest['env_id']", "manifest['resolution']", "ckpt['config']", "cfg['resolved']", "summary['success_rate']"]


def test_no_string_key_reads_of_contracts_outside_their_modules():
    files = [p for d in ("worldmodel", "envs", "scripts") for p in (ROOT / d).rglob("*.py")
             if "contracts" not in p.relative_to(ROOT).parts]
    bad = [f"{p.relative_to(ROOT)}:{line}: {what}" for p in files
           for line, what in string_key_reads(ast.parse(p.read_text()))]
    assert not bad, "read these through worldmodel/contracts instead:\n" + "\n".join(bad)


def manifest(**change) -> dict:
    m = {"env_id": "worldmodel/PointReach-v0", "action_low": [-1.0, -1.0], "action_high": [1.0, 1.0],
         "action_dim": 2, "state_dim": 4, "frame_skip": 1, "fps": 20, "resolution": [64, 64], "episodes": 2,
         "frames": 22, "proprio_dims": [0, 1, 2, 3], "policy": "scripted", "future_field": {"kept": True},
         "episode_list": [{"id": 0, "steps": 10, "seed": 7, "policy_seed": 3}, {"id": 1, "steps": 10}]}
    m.update(change)
    return {k: v for k, v in m.items() if v is not None}


def test_manifest_round_trips_and_keeps_unknown_fields():
    m = Manifest.from_dict(manifest(), "ds/manifest.json")
    assert m.episode_list[0] == EpisodeEntry(id=0, steps=10, seed=7, extra={"policy_seed": 3})
    assert m.episode_ids == [0, 1] and m.seed_of(0) == 7 and m.seed_of(1) is None
    assert m.state_token_dims("proprio") == [0, 1, 2, 3] and m.state_token_dims("all") == [0, 1, 2, 3]
    again = to_dict(m)
    assert again["future_field"] == {"kept": True} and again["episode_list"][0]["policy_seed"] == 3
    assert Manifest.from_dict(json.loads(json.dumps(again))) == m


@pytest.mark.parametrize("change, match", [
    ({"action_dim": None}, r"^ds/manifest.json: missing field 'action_dim'"),
    ({"fps": "fast"}, r"^ds/manifest.json: field 'fps' should be float, got str 'fast'"),
    ({"episodes": 3}, r"^ds/manifest.json: episodes=3 but episode_list has 2 entries"),
    ({"episode_list": [{"id": 0}, {"id": 1, "steps": 10}]}, r"^ds/manifest.json: field 'episode_list'\[0\]: "
                                                            r"missing field 'steps'"),
])
def test_a_bad_manifest_is_one_line_naming_the_file_and_field(change, match):
    with pytest.raises(ValueError, match=match):
        Manifest.from_dict(manifest(**change), "ds/manifest.json")


def test_checkpoint_meta_reads_old_and_new_layouts():
    record = PredictorRecord(dataset="ds", model={"embed_dim": 8}, manifest=Manifest.from_dict(manifest()),
                             train_episodes=[0], val_episodes=[1], state_dims=[0, 1])
    meta = CheckpointMeta("train_ac", {"frame_skip": 2, "val_fraction": 0.5, "split_seed": 3}, record)
    ckpt = {"kind": "train_ac", "config": meta.to_config(), "model": {}}
    back = CheckpointMeta.of(ckpt, "c.pt")
    assert back == meta and back.frame_skip == 2 and back.split == (0.5, 3) and back.val_episodes == [1]
    assert back.dataset == "ds" and not back.finetuned
    pretrain = CheckpointMeta.of({"kind": "pretrain", "config": {"model": {"embed_dim": 8}}, "model": {}})
    assert pretrain.resolved is None and pretrain.model_config == {"embed_dim": 8} and pretrain.frame_skip == 1
    with pytest.raises(ValueError, match="kind is 'pretrain', expected 'train_ac'"):
        pretrain.expect("train_ac", "p.pt")
    broken = {"kind": "train_ac", "config": {"resolved": {"dataset": "ds", "model": {}}}}
    with pytest.raises(ValueError, match=r"^c.pt: config.resolved: missing field 'manifest'"):
        CheckpointMeta.of(broken, "c.pt")


def test_summaries_round_trip_and_name_a_missing_field(tmp_path):
    plan = summary_of("plan", {"env": "e", "checkpoint": "c", "episodes": 2, "success_rate": 0.5,
                               "success_ci95": [0.1, 0.9], "protocol": {"budget": 75}, "val_collapse_x": 1.0})
    assert isinstance(plan, PlanSummary) and plan.success_rate == 0.5 and plan.extra == {"val_collapse_x": 1.0}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(to_dict(plan)))
    assert load_summary(path, "plan") == plan
    old = to_dict(plan)
    del old["success_rate"]
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: missing field 'success_rate' \(PlanSummary\)"):
        load_summary(path, "plan")
    assert set(SUMMARIES) >= {"data", "collect", "pretrain", "train-ac", "train-pixel", "drift", "plan",
                              "eval-offline", "bench", "pipeline"}


def test_the_pipeline_headline_is_typed_and_sparse():
    """Rows are records; figures a run did not produce stay absent in the JSON, and a wrong value names its place."""
    from worldmodel.contracts.headline import DriftRow, PlanCell, PlanRow
    from worldmodel.contracts.summaries import PipelineSummary

    data = {"report": "r.html", "tasks": ["T"], "stages": {"plan": {"summary": "s.json", "seconds": 1.0}},
            "headline": {"drift": {"T": {"horizon": 8, "probe_error_latent": 0.5}},
                         "plan": {"T": {"latent": {"success_rate": 0.8, "mode": "pure"}, "random": 0.1}}}}
    s = summary_of("pipeline", data, "run/summary.json")
    assert isinstance(s.headline.drift["T"], DriftRow) and s.headline.drift["T"].pixel_error is None
    assert isinstance(s.headline.plan["T"], PlanRow) and isinstance(s.headline.plan["T"].latent, PlanCell)
    assert s.stages["plan"].seconds == 1.0 and isinstance(s, PipelineSummary)
    assert to_dict(s)["headline"]["drift"]["T"] == {"horizon": 8, "probe_error_latent": 0.5}  # no nulls added
    assert to_dict(s)["headline"]["plan"]["T"]["latent"]["privileged_inputs"] == []  # a cell is whole
    data["headline"]["plan"]["T"]["latent"]["success_rate"] = "high"
    with pytest.raises(ValueError, match=r"run/summary.json: field 'headline'.*'T'.*'latent'.*success_rate"):
        summary_of("pipeline", data, "run/summary.json")
