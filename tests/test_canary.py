"""`adapterci canary` and `adapterci serving`: verdicts on simulated request logs (each effect of the simulator),
the error-type table, bad log rows, unknown versions, --act through the local registry and the Hub emulator
(under faults), and the serving manifest a release writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from adapterci.canary import analyze
from adapterci.canary.simulate import simulate, write_logs
from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.release import promote, release

pytestmark = pytest.mark.xdist_group("registry")
HOURS, PER_HOUR, SHARE = 4, 2500, 0.2  # 2000 canary requests: enough for every effect of the simulator
START = 1_767_225_600.0  # the simulator's first request (2026-01-01T00:00:00Z)


def fake_adapter(root: Path, tag: str) -> Path:
    adapter = root / f"adapter-{tag}"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "tag": tag}))
    (adapter / "adapter_model.safetensors").write_bytes(tag.encode() * 64)
    return adapter


def set_canary(project: Path, **settings) -> Path:
    """Write `canary:` settings into the project's config."""
    path = project / "adapterci.yaml"
    config = yaml.safe_load(path.read_text())
    config["canary"] = {"min_requests": 500, "logs": ["logs/*"], **settings}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def backdate(project: Path, when: float = START, hub=None) -> None:
    """Date every release commit of the project's registry (local, or `hub`: the emulator) at `when`: the
    simulated logs start then, and the analysis counts only rows from the canary's release on."""
    from datetime import datetime, timezone

    if hub is not None:
        for repo in hub.state.repos.values():
            for commit in repo.commits.values():
                commit.date = when
        return
    date = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for path in (project / ".adapterci" / "registry" / "commits").glob("*/commit.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "date": date}))


@pytest.fixture
def project(example_project: Path, tmp_path: Path) -> Path:
    """The example project with v0.1.0 released and promoted (stable) and v0.1.1 released (canary), both
    dated at the start of the simulated logs."""
    set_canary(example_project)
    cfg = load_config(example_project / "adapterci.yaml")
    release(cfg, fake_adapter(tmp_path, "a"))
    promote(cfg)
    release(cfg, fake_adapter(tmp_path, "b"))
    backdate(example_project)
    return example_project


def logs_for(project: Path, effect: str, name: str = "requests.jsonl", seed: int = 0, hours: int = HOURS,
             versions: dict | None = None, cfg=None) -> Path:
    """Simulated request logs: the canary rows name the version tag, the stable rows the commit id."""
    cfg = cfg or load_config(project / "adapterci.yaml")
    from adapterci.registry import open_registry

    refs = open_registry(cfg).refs()
    requests = simulate(np.random.default_rng(seed), hours, PER_HOUR, SHARE, effect)
    return write_logs(requests, project / "logs" / name,
                      versions or {"canary": "v0.1.1", "stable": refs.target("stable")}, cfg.canary.fields)


def refs_of(project: Path) -> dict[str, str]:
    """The version commit each moving ref serves."""
    from adapterci.registry import open_registry

    refs = open_registry(load_config(project / "adapterci.yaml")).refs()
    return {name: refs.target(name) for name in ("canary", "stable")}


def served(hub, ref: str) -> str:
    """The version a branch of the emulator's repo serves: the manifest among the files it holds."""
    repo = hub.state.repo("models", "tester/sentiment")
    return json.loads(hub.state.blobs[repo.commits[repo.branches[ref]].files["adapterci.json"]])["version"]


def run_canary(project: Path, *args: str):
    return CliRunner().invoke(cli, ["canary", "--config", str(project / "adapterci.yaml"), "--json",
                                    "--no-summary", *args])


@pytest.mark.parametrize(("effect", "violated", "hours"), [
    ("new error type at 2%", "errors.rate <= stable + 0.005", HOURS),
    ("latency +30%", "latency.p95 <= stable * 1.10", HOURS),
    ("safety flags x3", "safety.flag_rate <= stable", 12),  # 0.5% -> 1.5%: rare events need more traffic
    ("feedback -5 points", "feedback.positive_rate >= stable - 0.02", 16),  # feedback on 30% of requests
])
def test_canary_rolls_back_each_harmful_effect(project: Path, effect: str, violated: str, hours: int) -> None:
    logs_for(project, effect, hours=hours)
    result = run_canary(project)
    assert result.exit_code == 1, result.output
    out = json.loads(result.output)
    assert out["verdict"] == "ROLLBACK" and out["version"] == "v0.1.1"
    outcomes = {r["rule"]: r["outcome"] for r in out["rules"]}
    assert outcomes[violated] == "VIOLATED"
    assert [r for r, o in outcomes.items() if o == "VIOLATED"] == [violated]
    assert violated in out["reason"]
    assert out["canary"]["requests"] + out["stable"]["requests"] == hours * PER_HOUR


def test_canary_equal_traffic_continues_then_promotes_after_max_age(project: Path) -> None:
    logs_for(project, "equal")
    result = run_canary(project)
    assert result.exit_code == 3, result.output
    out = json.loads(result.output)
    assert out["verdict"] == "CONTINUE"
    assert not [r for r in out["rules"] if r["outcome"] == "VIOLATED"]
    # `safety.flag_rate <= stable` has no margin: equality can never be proven; after max_age it is promoted
    set_canary(project, max_age="3h")
    result = run_canary(project)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["verdict"] == "PROMOTE" and "canary.max_age 3h" in out["reason"]
    assert "safety.flag_rate <= stable" in out["reason"]  # named as still undecided


def test_canary_promotes_on_proof_when_every_rule_has_a_margin(project: Path) -> None:
    set_canary(project, max_age=None, rules=["errors.rate <= stable + 0.02", "latency.p95 <= stable * 1.25",
                                             "safety.flag_rate <= 0.05", "success.rate >= stable - 0.05"])
    logs_for(project, "equal")
    out = json.loads(run_canary(project).output)
    assert out["verdict"] == "PROMOTE", out["reason"]
    assert {r["outcome"] for r in out["rules"]} == {"HOLDS"}
    assert out["reason"] == "all 4 rule(s) hold"


def test_canary_waits_for_min_requests(project: Path) -> None:
    set_canary(project, min_requests=5000)
    logs_for(project, "latency +30%")  # clearly worse, but stable has 8000 and the canary 2000 requests
    result = run_canary(project)
    assert result.exit_code == 3
    out = json.loads(result.output)
    assert out["verdict"] == "CONTINUE" and "min_requests (5000)" in out["reason"]


def test_canary_error_type_table_flags_new_and_grown_types(project: Path) -> None:
    logs_for(project, "new error type at 2%")
    out = json.loads(run_canary(project).output)
    table = {e["type"]: e for e in out["errors"]}
    assert set(table) == {"format_error", "timeout", "rate_limit"}
    assert table["format_error"]["new"] and table["format_error"]["grew"] and table["format_error"]["stable"] == 0
    assert 0.01 < table["format_error"]["canary_rate"] < 0.03
    assert not table["timeout"]["new"] and not table["timeout"]["grew"]
    assert out["errors"][0]["type"] == "format_error"  # most frequent on the canary first
    markdown = CliRunner().invoke(cli, ["canary", "--config", str(project / "adapterci.yaml"), "--no-summary"]).output
    assert "| `format_error` |" in markdown and "🆕 new, 📈 grew significantly" in markdown


def test_canary_counts_rows_of_unknown_versions(project: Path) -> None:
    logs_for(project, "equal")
    with open(project / "logs" / "requests.jsonl", "a") as f:
        for version in ["v0.0.9", "v0.0.9", "deadbeefcafe"]:
            f.write(json.dumps({"timestamp": 1767225600, "adapter_version": version, "latency_ms": 1}) + "\n")
    out = json.loads(run_canary(project).output)
    assert out["unknown_versions"] == {"v0.0.9": 2, "deadbeefcafe": 1}
    assert out["canary"]["requests"] + out["stable"]["requests"] == HOURS * PER_HOUR


def test_canary_reads_csv_and_parquet_like_jsonl(project: Path) -> None:
    cfg = load_config(project / "adapterci.yaml")
    verdicts = {}
    for suffix in ("jsonl", "csv", "parquet"):
        path = logs_for(project, "latency +30%", name=f"r.{suffix}", cfg=cfg)
        decision = analyze(cfg, [str(path)])
        verdicts[suffix] = (decision.verdict, [r.outcome for r in decision.rules], decision.canary.requests)
    assert verdicts["csv"] == verdicts["parquet"] == verdicts["jsonl"]
    assert verdicts["jsonl"][0] == "ROLLBACK"


def test_canary_bad_rows_name_file_and_line_and_nothing_moves(project: Path) -> None:
    logs = project / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text(
        '{"timestamp": "2026-01-01T00:00:00Z", "adapter_version": "v0.1.1", "latency_ms": 12}\n'
        '{"timestamp": "2026-01-01T00:00:01Z", "adapter_version": "v0.1.1", "latency_ms": "slow"}\n'
        '\n'
        '{"adapter_version": "v0.1.1"}\n'
        'not json\n')
    (logs / "b.csv").write_text("timestamp,adapter_version,latency_ms,feedback\n"
                                "1767225600,v0.1.1,10,up\n"
                                "1767225601,v0.1.1,-3,\n"
                                "1767225602,v0.1.1,10,maybe\n")
    before = refs_of(project)
    result = run_canary(project, "--act")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["type"] == "LogError"  # --json: the error as one object on stdout
    lines = result.stderr.splitlines()
    assert "5 bad request log row(s):" in lines[0]
    assert lines[1:] == [
        f"  {logs / 'a.jsonl'}:2: `latency_ms` (latency): 'slow' is not a number",
        f"  {logs / 'a.jsonl'}:4: `timestamp` (timestamp): missing",
        f"  {logs / 'a.jsonl'}:5: not JSON (Expecting value: line 1 column 1 (char 0))",
        f"  {logs / 'b.csv'}:3: `latency_ms` (latency): '-3' is not a latency (a number >= 0)",
        f"  {logs / 'b.csv'}:4: `feedback` (feedback): 'maybe' is not feedback (1/0/-1, true/false, up/down, positive/negative)",
    ]
    assert "Traceback" not in result.output
    assert refs_of(project) == before


def test_canary_bad_parquet_rows_name_the_row(project: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (project / "logs").mkdir()
    rows = [{"timestamp": 1767225600.0, "adapter_version": "v0.1.1", "safety_flag": "no"},
            {"timestamp": float("nan"), "adapter_version": "v0.1.1", "safety_flag": "perhaps"}]
    pq.write_table(pa.Table.from_pylist(rows), project / "logs" / "r.parquet")
    result = run_canary(project)
    assert result.exit_code == 2
    assert f"{project / 'logs' / 'r.parquet'}:row 2: `timestamp` (timestamp): nan is not a time" in result.output


def test_canary_field_mapping_and_config_errors(project: Path) -> None:
    path = set_canary(project, fields={"latency": "duration", "safety": None},
                      rules=["latency.p95 <= stable * 1.1", "safety.flag_rate <= stable", "latency.p42 <= 1"])
    result = CliRunner().invoke(cli, ["canary", "--config", str(path)])
    assert result.exit_code == 2
    assert "`canary.rules[2]`: rule 'latency.p42 <= 1': unknown metric `p42` of `latency`" in result.output
    set_canary(project, fields={"latency": "duration", "safety": None}, rules=["safety.flag_rate <= stable"])
    result = CliRunner().invoke(cli, ["canary", "--config", str(path)])
    assert result.exit_code == 2 and "`canary.fields.safety` is null" in result.output
    line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if "safety.flag_rate" in l)
    assert f"line {line}: `canary.rules[0]`" in result.output


def test_gate_rules_still_reject_scaling_and_stable() -> None:
    from adapterci.gate.rules import RuleError, parse_rule

    for text in ["sentiment.accuracy >= champion * 1.1", "sentiment.accuracy >= stable"]:
        with pytest.raises(RuleError, match="EXPR a number, base, champion, candidate or SUITE.METRIC"):
            parse_rule(text)


def test_canary_act_promotes_rolls_back_and_never_moves_on_continue(project: Path) -> None:
    v010, v011 = refs_of(project)["stable"], refs_of(project)["canary"]
    logs_for(project, "equal")
    before = refs_of(project)
    assert run_canary(project, "--act").exit_code == 3  # CONTINUE: nothing moves
    assert refs_of(project) == before

    (project / "logs" / "requests.jsonl").unlink()
    logs_for(project, "latency +30%")
    out = json.loads(run_canary(project, "--act").output)
    assert out["verdict"] == "ROLLBACK"
    assert out["acted"]["ref"] == "canary" and out["acted"]["version"] == "v0.1.0"
    assert refs_of(project)["canary"] == refs_of(project)["stable"] == v010
    again = json.loads(run_canary(project, "--act").output)  # canary is stable now: nothing to analyze
    assert again["verdict"] == "CONTINUE" and again["acted"] is None

    cfg = load_config(project / "adapterci.yaml")
    from adapterci.registry import open_registry

    reg = open_registry(cfg)  # serve v0.1.1 again by hand (a release never moves canary back to a retracted commit)
    state = reg.refs().moving["canary"]
    reg.set_ref("canary", v011, (*state.history, v011), state, "canary -> v0.1.1 (by hand)")
    set_canary(project, max_age="2h")
    out = json.loads(run_canary(project, "--act", "--logs", str(logs_for(project, "equal", name="new.jsonl"))).output)
    assert out["verdict"] == "PROMOTE" and out["acted"]["ref"] == "stable" and out["acted"]["version"] == "v0.1.1"
    assert refs_of(project)["stable"] == v011


def test_canary_step_summary_has_verdict_and_tables(project: Path, tmp_path: Path, monkeypatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    logs_for(project, "new error type at 2%")
    result = CliRunner().invoke(cli, ["canary", "--config", str(project / "adapterci.yaml"), "--json"])
    assert result.exit_code == 1
    text = summary.read_text()
    assert text.startswith("## adapterci canary · ❌ ROLLBACK")
    assert "### Rules" in text and "### Error types" in text and "❌ VIOLATED" in text


# --- the Hub: --act under faults -----------------------------------------------------------------------------
@pytest.fixture
def hub_project(example_project: Path, hub_emulator, tmp_path: Path) -> Path:
    path = set_canary(example_project)
    text = path.read_text().replace("registry: file://.adapterci/registry", "registry: hf://tester/sentiment")
    path.write_text(text)
    cfg = load_config(path)
    release(cfg, fake_adapter(tmp_path, "a"))
    promote(cfg)
    release(cfg, fake_adapter(tmp_path, "b"))
    backdate(example_project, hub=hub_emulator)
    return example_project


def test_canary_act_rides_out_transient_hub_faults(hub_project: Path, hub_emulator) -> None:
    logs_for(hub_project, "latency +30%")
    hub_emulator.add_fault(r"/commit/canary$", method="POST", status=503, times=1)
    hub_emulator.add_fault(r"/commit/canary$", method="POST", action="drop", times=1)
    out = json.loads(run_canary(hub_project, "--act").output)
    assert out["verdict"] == "ROLLBACK" and out["acted"]["version"] == "v0.1.0"
    assert all(f["fired"] == 1 for f in hub_emulator.faults.list())
    assert served(hub_emulator, "canary") == served(hub_emulator, "stable") == "v0.1.0"


def test_canary_act_persistent_hub_outage_fails_cleanly_and_rerun_finishes(hub_project: Path, hub_emulator) -> None:
    set_canary(hub_project, max_age="2h")
    logs_for(hub_project, "equal")
    hub_emulator.add_fault(r"/commit/stable$", method="POST", status=503, times=-1)
    result = run_canary(hub_project, "--act")
    assert result.exit_code == 1
    assert "Error:" in result.output and "Traceback" not in result.output
    assert (served(hub_emulator, "canary"), served(hub_emulator, "stable")) == ("v0.1.1", "v0.1.0")  # unmoved
    hub_emulator.faults.clear()
    out = json.loads(run_canary(hub_project, "--act").output)  # the rerun promotes
    assert out["verdict"] == "PROMOTE" and out["acted"]["version"] == "v0.1.1"
    assert served(hub_emulator, "stable") == "v0.1.1"


# --- serving ---------------------------------------------------------------------------------------------------
def test_release_writes_serving_json_and_serving_prints_it(project: Path, tmp_path: Path) -> None:
    cfg = load_config(project / "adapterci.yaml")
    from adapterci.runs import RunDir

    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    release(cfg, fake_adapter(tmp_path, "c"), run_dir=rd)
    refs = refs_of(project)
    serving = json.loads(rd.serving_json.read_text())
    assert [(a["role"], a["version"], a["commit"], a["weight"]) for a in serving["adapters"]] == [
        ("stable", "v0.1.0", refs["stable"], 0.9), ("canary", "v0.1.2", refs["canary"], 0.1)]
    assert serving["router"]["routes"] == [{"model": "sentiment-stable", "weight": 0.9},
                                           {"model": "sentiment-canary", "weight": 0.1}]
    assert f"sentiment-canary={serving['adapters'][1]['path']}" in serving["vllm"]["command"]
    assert Path(serving["adapters"][1]["path"], "adapter_config.json").is_file()

    from adapterci.report import render

    assert "### Serving" in render(rd.path) and "| `sentiment-canary` | v0.1.2 |" in render(rd.path)
    printed = CliRunner().invoke(cli, ["serving", "--config", str(project / "adapterci.yaml")])
    assert printed.exit_code == 0 and json.loads(printed.output)["adapters"] == serving["adapters"]
    one = CliRunner().invoke(cli, ["serving", "--config", str(project / "adapterci.yaml"), "--ref", "v0.1.1"])
    assert [(a["version"], a["weight"]) for a in json.loads(one.output)["adapters"]] == [("v0.1.1", 1.0)]


def test_serving_vllm_snippet_pins_hub_adapters_by_commit(hub_project: Path, hub_emulator) -> None:
    repo = hub_emulator.state.repo("models", "tester/sentiment")
    result = CliRunner().invoke(cli, ["serving", "--config", str(hub_project / "adapterci.yaml"), "--format", "vllm"])
    assert result.exit_code == 0, result.output
    stable, canary = repo.tags["v0.1.0"], repo.tags["v0.1.1"]  # pinned by the commits the refs serve
    assert result.output.splitlines() == [
        f"hf download tester/sentiment --revision {stable} --local-dir adapters/sentiment-stable",
        f"hf download tester/sentiment --revision {canary} --local-dir adapters/sentiment-canary",
        "vllm serve models/tiny-llama --enable-lora --max-loras 2 --lora-modules "
        "sentiment-stable=adapters/sentiment-stable sentiment-canary=adapters/sentiment-canary",
        "# route by weight: sentiment-stable=0.9, sentiment-canary=0.1",
    ]
    missing = CliRunner().invoke(cli, ["serving", "--config", str(hub_project / "adapterci.yaml"), "--ref", "v9.0.0"])
    assert missing.exit_code == 2 and "'v9.0.0' is not released" in missing.output
