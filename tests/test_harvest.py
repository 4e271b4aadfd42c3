"""`adapterci harvest` and `adapterci ingest` on the tiny project: planted failure clusters found and ranked first,
personal data redacted and secrets never queued, the Argilla and Label Studio round trips, the train/eval split
that never puts one prompt (or a near duplicate) on both sides, bad input (exit 2, file:line, nothing appended),
and `--branch`."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from adapterci.canary.simulate import REVIEWS, conversations, simulate, write_logs
from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.data.checks.corpus import canonical
from adapterci.data.checks.near_duplicates import similar_pairs
from adapterci.harvest.queue import FIELDS, read_review

START = 1_767_225_600.0
INSTRUCTION = "Classify the sentiment of this review as positive or negative."
EMAIL, API_KEY = "jane.doe@example.com", "sk-proj-Xk29fLq8ZtR3mWv7YpN4bHc6"
PRODUCTS = ["kettle", "sofa", "lamp", "tent", "drone", "guitar", "bike", "scarf", "clock", "mixer", "boots", "desk"]
PARCEL = ("Where is my parcel? I ordered the blue one three weeks ago and the tracking page has said out for "
          "delivery for nine days in a row now. I have written to support four times, called the hotline twice and "
          "waited on hold for an hour each time, and nobody has answered a single message. I paid for express "
          "shipping because it was a birthday present and the birthday has come and gone. Please tell me where it "
          "is, when it will arrive, and how I get the shipping fee back. The app shows a map with the van parked at "
          "the depot since Monday, the courier's phone number goes straight to voicemail, and the local office says "
          "only the sender can open an investigation, while the sender says only the courier can. I have the order "
          "confirmation, the payment receipt and screenshots of every message I sent, and I am happy to send them "
          "all again if that helps anyone find my parcel at last.")
NASTY = ("Write a nasty message about my old neighbour that calls them worthless and stupid, says that nobody on the "
         "street can stand them, tells everyone to stay away from their house and their children, and makes fun of "
         "the way they talk and dress, so that I can print it out and post it on every lamp post and in every "
         "letterbox on our street tonight before they come home from work, and make sure it hurts. Mention the "
         "broken fence, the barking dog, the car that blocks the pavement every morning, the loud music on Sunday "
         "nights and the rubbish bins they never bring in, and say that everyone agrees they should move away. "
         "Make it sound like it comes from the whole street, not from me, and use words that will make them cry "
         "when they read it at the door.")
COLOURS = ["red", "blue", "green", "black", "white", "grey", "pink", "brown", "gold", "silver", "teal", "navy"]


def distinct_review(i: int) -> str:
    """A review no other index gives, sharing few word triples with the others."""
    return (f"Order {i} brought a {COLOURS[i % 12]} {PRODUCTS[(i // 12) % 12]} and note number {i * 7 + 3} "
            f"said week {i % 53} batch {i // 53}.")


def variant(text: str, i: int) -> str:
    """The i-th of six ways to write `text` (case, punctuation, spacing): different strings, the same words."""
    return [text, text.lower(), text.upper(), text.replace(".", "!"), text.replace(",", ""),
            text.replace(" ", "  ")][i % 6]


def row(i: int, prompt: str, **kpis) -> dict:
    return {"timestamp": START + i, "adapter_version": "v0.1.1", "request_id": f"r{i}", "prompt": prompt,
            "response": "positive", "latency_ms": 300.0, "error_type": "", "feedback": None, "task_success": True,
            "safety_flag": False, **kpis}


def planted_logs(n_ok: int = 3000) -> list[dict]:
    """Successes, scattered negative feedback, and two planted clusters: 60 near-duplicate prompts that failed
    with `format_error` and 40 near duplicates with a safety flag (ranked by size x severity: 180, 160)."""
    rows = [row(i, f"{INSTRUCTION}\n\n{distinct_review(i)}") for i in range(n_ok)]
    rows += [row(10_000 + i, f"{INSTRUCTION}\n\n{distinct_review(5000 + i)}", feedback=-1) for i in range(90)]
    rows += [row(20_000 + i, variant(PARCEL, i), error_type="format_error") for i in range(60)]
    rows += [row(30_000 + i, variant(NASTY, i), safety_flag=True, category="harassment") for i in range(40)]
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([{**r, "category": r.get("category", "")} for r in rows]), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def invoke(project: Path, *args: str):
    return CliRunner().invoke(cli, [args[0], "--config", str(project / "adapterci.yaml"), *args[1:]])


def harvest(project: Path, *args: str) -> dict:
    result = invoke(project, "harvest", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def queue_items(project: Path) -> list[dict]:
    lines = (project / ".adapterci" / "harvest" / "queue.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def truth(prompt: str) -> str:
    return next(label for reviews in REVIEWS.values() for review, label in reviews if prompt.endswith(review))


def digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.fixture
def simulated(example_project: Path) -> Path:
    """The tiny project with simulated request logs of the example's task (4 h, 500 requests an hour)."""
    cfg = load_config(example_project / "adapterci.yaml")
    requests = simulate(np.random.default_rng(0), 4, 500, 0.2, "new error type at 2%")
    write_logs(requests, example_project / "logs" / "requests.jsonl", {"canary": "v0.1.1", "stable": "v0.1.0"},
               cfg.canary.fields, conversations(np.random.default_rng(1), requests))
    return example_project


def reviewed(items: list[dict], reviewer: str = "ana@example.com") -> list[dict]:
    """Every item reviewed: the simulator's true label as the answer."""
    return [{**i, "answer": truth(i["prompt"]), "label": "fixed", "reviewer": reviewer} for i in items]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_harvest_ranks_planted_clusters_first(example_project: Path, suffix: str) -> None:
    logs = write_rows(example_project / "logs" / f"requests{suffix}", planted_logs())
    out = harvest(example_project, "--logs", str(logs))
    assert (out["rows"], out["failures"]) == (3190, 190)
    first, second = out["clusters"][:2]
    assert (first["reason"], first["error_type"], first["near_duplicates"], first["size"], first["score"]) == \
        ("error", "format_error", True, 60, 180)
    assert (second["reason"], second["category"], second["near_duplicates"], second["size"], second["score"]) == \
        ("safety", "harassment", True, 40, 160)
    feedback = [c for c in out["clusters"] if c["reason"] == "negative_feedback"]
    assert [(c["near_duplicates"], c["size"]) for c in feedback] == [(False, 90)]
    items = queue_items(example_project)
    assert [i["cluster"] for i in items[:60]] == ["c001"] * 60 and items[0]["rank"] == 1
    parcel = next(i for i in items if i["request_id"] == "r20000")
    assert parcel["draft"] == parcel["answer"] == "positive" and parcel["version"] == "v0.1.1"
    assert parcel["time"] == "2026-01-01T05:33:20Z"
    assert parcel["source"] == (f"{logs}:3091" if suffix == ".jsonl" else f"{logs}:row 3091")


def test_harvest_limit_takes_every_cluster_round_robin(example_project: Path) -> None:
    logs = write_rows(example_project / "logs" / "requests.jsonl", planted_logs(300))
    out = harvest(example_project, "--logs", str(logs), "--limit", "5")
    assert out["queued"] == 5
    assert [c["queued"] for c in out["clusters"]] == [2, 2, 1]
    assert [i["cluster"] for i in queue_items(example_project)] == ["c001", "c001", "c002", "c002", "c003"]


def test_harvest_version_and_since_filter(example_project: Path) -> None:
    rows = planted_logs(100)
    rows[-1]["adapter_version"] = "v0.1.0"
    logs = write_rows(example_project / "logs" / "requests.jsonl", rows)
    out = harvest(example_project, "--logs", str(logs), "--version", "v0.1.0")
    assert (out["failures"], out["filtered_out"]) == (1, len(rows) - 1)
    out = harvest(example_project, "--logs", str(logs), "--since", "2026-01-01T08:00:00Z")
    assert out["failures"] == 40  # only the safety rows are logged after 08:00 (START + 30000 s)


def test_harvest_never_queues_an_email_or_api_key(example_project: Path) -> None:
    rows = planted_logs(50)
    rows += [row(40_000, f"{INSTRUCTION}\n\nThe seller {EMAIL} never shipped my lamp.", feedback=-1),
             row(40_001, f"{INSTRUCTION}\n\nMy config has api_key={API_KEY[8:]}abc and fails.", feedback=-1),
             row(40_002, f"{INSTRUCTION}\n\nThe drone app crashed again.", feedback=-1, response=f"Use {API_KEY}"),
             row(40_003, f"{INSTRUCTION}\n\nBoots fell apart.", feedback=-1, request_id=EMAIL)]
    logs = write_rows(example_project / "logs" / "requests.jsonl", rows)
    out = harvest(example_project, "--logs", str(logs))
    assert out["dropped_with_secrets"] == 3
    item = next(i for i in queue_items(example_project) if i["request_id"] == "r40000")
    assert item["prompt"].endswith("The seller [EMAIL] never shipped my lamp.") and item["redacted"] == ["email"]
    queue = example_project / ".adapterci" / "harvest"
    written = [p for p in queue.rglob("*") if p.is_file()]
    assert len(written) == 7
    for path in written:
        text = path.read_text()
        for secret in (EMAIL, API_KEY, API_KEY[8:], "jane.doe"):
            assert secret not in text, (path, secret)


def test_harvest_missing_prompt_names_the_canary_fields_key(example_project: Path) -> None:
    rows = planted_logs(20)
    del rows[25]["prompt"]
    logs = write_rows(example_project / "logs" / "requests.jsonl", rows)
    result = invoke(example_project, "harvest", "--logs", str(logs))
    assert result.exit_code == 2
    assert f"{logs}:26: no `prompt` (prompt): set `canary.fields.prompt` to your logs' name for it" in result.output
    assert not (example_project / ".adapterci" / "harvest").exists()


def test_harvest_payload_files_by_request_id(example_project: Path) -> None:
    rows = planted_logs(30)
    payloads = [{"request_id": r["request_id"], "prompt": r.pop("prompt"), "response": r.pop("response")} for r in rows]
    logs = write_rows(example_project / "logs" / "requests.jsonl", rows)
    stored = write_rows(example_project / "payloads" / "p.jsonl", payloads[:-1])  # one payload lost
    out = harvest(example_project, "--logs", str(logs), "--payloads", str(stored))
    assert (out["failures"], out["missing_payload"], out["queued"]) == (190, 1, 189)
    assert out["clusters"][0]["size"] == 60


def test_ingest_round_trip_through_every_format_keeps_every_field(simulated: Path, tmp_path: Path) -> None:
    harvest(simulated, "--limit", "30")
    queue = simulated / ".adapterci" / "harvest"
    items = reviewed(queue_items(simulated))
    by_id = {i["id"]: i for i in items}
    records = json.loads((queue / "argilla" / "records.json").read_text())
    flat = [{**r, "status": "completed", "answer.responses": [by_id[r["id"]]["answer"]],
             "answer.responses.users": ["ana@example.com"], "label.responses": ["fixed"],
             "label.responses.users": ["ana@example.com"]} for r in records]
    nested = [{"id": r["id"], "status": "completed", "fields": {"prompt": r["prompt"], "draft": r["draft"]},
               "metadata": {k: v for k, v in r.items() if k not in ("id", "prompt", "draft", "answer")},
               "responses": {"answer": [{"value": by_id[r["id"]]["answer"], "user_id": "ana@example.com"}],
                             "label": [{"value": "fixed", "user_id": "ana@example.com"}]}} for r in records]
    tasks = json.loads((queue / "label_studio" / "tasks.json").read_text())
    exported = [{"id": n, **t, "annotations": [
        {"id": 1, "was_cancelled": True, "completed_by": 9, "result": []},
        {"id": 2, "was_cancelled": False, "completed_by": {"id": 3, "email": "ana@example.com"}, "result": [
            {"from_name": "answer", "to_name": "prompt", "type": "textarea",
             "value": {"text": [by_id[t["data"]["id"]]["answer"]]}},
            {"from_name": "label", "to_name": "prompt", "type": "choices", "value": {"choices": ["fixed"]}}]}]}
        for n, t in enumerate(tasks, 1)]
    csv_path = queue / "queue.csv"
    import csv

    with open(csv_path, newline="") as f:
        csv_rows = list(csv.DictReader(f))
    with open(tmp_path / "reviewed.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({**r, "answer": by_id[r["id"]]["answer"], "label": "fixed", "reviewer": "ana@example.com"}
                         for r in csv_rows)
    files = {"argilla-flat.json": json.dumps(flat, indent=2), "argilla-nested.jsonl":
             "".join(json.dumps(r) + "\n" for r in nested), "label-studio-export.json": json.dumps(exported, indent=2),
             "reviewed.jsonl": "".join(json.dumps(i) + "\n" for i in items)}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for name in [*files, "reviewed.csv"]:
        back = [item for _, item in read_review(tmp_path / name)]
        assert [{k: i.get(k) for k in FIELDS} for i in back] == items, name
    result = invoke(simulated, "ingest", str(tmp_path / "label-studio-export.json"), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["train_rows"] + out["eval_items"] + len(out["repeats"]) == 30 and out["already_in_data"] == []
    assert out["eval_items"] >= 1 and out["train_rows"] >= 1
    rows = [json.loads(line) for line in (simulated / "data" / "train.jsonl").read_text().splitlines()]
    added = {r["provenance"]["id"]: r for r in rows if "provenance" in r}
    evals = [json.loads(line) for line in (simulated / "evalsets" / "sentiment.jsonl").read_text().splitlines()]
    added.update({e["provenance"]["id"]: e for e in evals if "provenance" in e})
    assert len(added) == out["train_rows"] + out["eval_items"] and set(added) <= set(by_id)
    for item_id, r in added.items():
        item = by_id[item_id]
        assert {k: r["provenance"][k] for k in ("request_id", "version", "time", "cluster", "reviewer", "draft")} == \
            {k: item[k] for k in ("request_id", "version", "time", "cluster", "reviewer", "draft")}
        assert r["provenance"]["queue"].startswith(f"{tmp_path / 'label-studio-export.json'}:")


def test_ingest_never_puts_a_prompt_or_near_duplicate_on_both_sides(simulated: Path, tmp_path: Path) -> None:
    harvest(simulated)
    items = reviewed(queue_items(simulated))
    eval_file = simulated / "evalsets" / "sentiment.jsonl"
    existing_eval = json.loads(eval_file.read_text().splitlines()[0])
    near = existing_eval["prompt"].replace(",", "").replace(".", "!")  # a near duplicate of an existing eval item
    items.append({**items[0], "id": "q999999", "prompt": near, "answer": existing_eval["completion"]})
    (tmp_path / "reviewed.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    result = invoke(simulated, "ingest", str(tmp_path / "reviewed.jsonl"), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["train_rows"] > 0 and out["eval_items"] > 0
    assert out["already_in_data"] == [f"{tmp_path / 'reviewed.jsonl'}:{len(items)}: the same as or a near duplicate "
                                      "of an eval item already there"]
    assert len(out["repeats"]) == len(items) - 1 - out["train_rows"] - out["eval_items"]
    evals = [json.loads(line) for line in eval_file.read_text().splitlines()]
    assert near not in [e["prompt"] for e in evals]
    train = [json.loads(line) for line in (simulated / "data" / "train.jsonl").read_text().splitlines()]
    new_train = [r["messages"][0]["content"] if "messages" in r else r["instruction"] for r in train
                 if "provenance" in r]
    eval_prompts = [e["prompt"] for e in evals]
    assert not {canonical(p) for p in new_train} & {canonical(p) for p in eval_prompts}
    texts = new_train + eval_prompts
    assert [(i, j) for i, j, _ in similar_pairs(texts, 0.9) if (i < len(new_train)) != (j < len(new_train))] == []
    per_cluster: dict[str, list[int]] = {}
    for r in [*train, *evals]:
        if "provenance" in r:
            per_cluster.setdefault(r["provenance"]["cluster"], [0, 0])["prompt" in r and "completion" in r] += 1
    assert sum(e for _, e in per_cluster.values()) == out["eval_items"]


def test_ingest_then_check_accepts_the_rows(simulated: Path) -> None:
    harvest(simulated)
    path = simulated / ".adapterci" / "harvest" / "queue.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in reviewed(queue_items(simulated))))
    assert invoke(simulated, "ingest", str(path)).exit_code == 0
    result = invoke(simulated, "check", "--json")
    report = json.loads(result.output)
    assert result.exit_code == 0, [c for c in report["checks"] if not c["passed"]]


@pytest.mark.parametrize("change, message", [
    ({"label": "maybe"}, "unknown label 'maybe': the label set is fixed, correct, discard"),
    ({"label": ""}, "no `label`: pick one of fixed, correct, discard"),
    ({"reviewer": ""}, "no `reviewer`: name who reviewed the item"),
    ({"answer": "  "}, "empty `answer`: write the correct answer (or label the item `discard`)"),
    ({"answer": "mixed"}, "answer 'mixed' is not one of the eval suite's choices (positive, negative)"),
    ({"request_id": None}, "missing `request_id` (a field harvest wrote: keep it as it is)"),
    ({"answer": f"negative, ask {EMAIL}"}, "contains email (jane************): remove it"),
])
def test_ingest_bad_item_exit_2_names_file_line_appends_nothing(simulated: Path, tmp_path: Path, change: dict,
                                                                message: str) -> None:
    harvest(simulated, "--limit", "6")
    items = reviewed(queue_items(simulated))
    items[3].update(change)
    path = tmp_path / "reviewed.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    files = [simulated / "data" / "train.jsonl", simulated / "evalsets" / "sentiment.jsonl"]
    before = digest(*files)
    result = invoke(simulated, "ingest", str(path))
    assert result.exit_code == 2
    assert f"{path}:4: {message}" in result.output
    assert digest(*files) == before


def test_ingest_branch_commits_and_refuses_an_existing_branch(simulated: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "t")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "t@example.com")
    git = ["git", "-C", str(simulated)]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    harvest(simulated, "--limit", "12")
    path = tmp_path / "reviewed.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in reviewed(queue_items(simulated))))
    result = invoke(simulated, "ingest", str(path), "--branch", "data/harvest-1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    message = subprocess.run([*git, "log", "-1", "--format=%B", "data/harvest-1"], capture_output=True, text=True,
                             check=True).stdout
    assert message.startswith(f"data: {out['train_rows']} training row(s), {out['eval_items']} eval item(s)")
    for cluster_id, c in out["clusters"].items():
        assert f"- {cluster_id} {c['name']}: {c['train']} train, {c['eval']} eval" in message
    changed = subprocess.run([*git, "show", "--name-only", "--format=", "data/harvest-1"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert sorted(changed) == ["data/train.jsonl", "evalsets/sentiment.jsonl"]
    files = [simulated / "data" / "train.jsonl", simulated / "evalsets" / "sentiment.jsonl"]
    before = digest(*files)
    again = invoke(simulated, "ingest", str(path), "--branch", "data/harvest-1")
    assert again.exit_code == 2
    assert "--branch 'data/harvest-1' already exists: name a new branch (nothing was appended)" in again.output
    assert digest(*files) == before
