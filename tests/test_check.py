"""`adapterci check` end to end on copies of the example project: real Great Expectations, the real
tiny-llama tokenizer, crafted good and bad rows."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.check import CHECKS
from adapterci.cli import cli

pytestmark = pytest.mark.xdist_group("check")

REVIEW = "Classify the sentiment of this review as positive or negative."


def run_check(project: Path, *args: str) -> tuple[int, dict | str]:
    result = CliRunner().invoke(cli, ["check", "--config", str(project / "adapterci.yaml"), *args])
    if "--json" in args and result.exit_code in (0, 1):
        return result.exit_code, json.loads(result.output)
    return result.exit_code, result.output


def failures(report: dict, name: str) -> list[dict]:
    return next(c for c in report["checks"] if c["name"] == name)["failures"]


def failed(report: dict) -> set[str]:
    return {c["name"] for c in report["checks"] if not c["passed"]}


def append(path: Path, *rows: dict | str | bytes) -> int:
    """Append rows (dicts as JSON, str/bytes verbatim) and return the line number of the first one."""
    first = len(path.read_bytes().splitlines()) + 1
    with path.open("ab") as f:
        for row in rows:
            data = row if isinstance(row, bytes) else (row if isinstance(row, str) else json.dumps(row)).encode()
            f.write(data + b"\n")
    return first


def review(text: str, label: str = "positive") -> dict:
    return {"instruction": REVIEW, "input": text, "output": label}


def set_checks(project: Path, **values) -> None:
    cfg = project / "adapterci.yaml"
    text = cfg.read_text()
    for key, value in values.items():
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{key}:"))
        text = text.replace(line, f"  {key}: {value}")
    cfg.write_text(text)


def test_check_example_passes_and_writes_outputs(example_project: Path) -> None:
    code, report = run_check(example_project, "--json")
    assert code == 0, report
    assert report["passed"] is True
    assert [c["name"] for c in report["checks"]] == list(CHECKS)
    assert all(c["passed"] and c["failures"] == [] for c in report["checks"])
    assert set(report) == {"passed", "checks"}
    assert all(set(c) == {"name", "passed", "failures"} for c in report["checks"])
    run = example_project / ".adapterci" / "run" / "check"
    record = json.loads((run / "check.json").read_text())
    assert record["passed"] is True and record["rows"]["train"] == 360
    assert record["rows"] == {"train": 360, "validation": 60, "eval:sentiment": 104, "eval:safety": 40}
    assert "| `leakage` | pass |" in (run / "summary.md").read_text()
    index = (run / "data_docs" / "index.html").read_text()
    assert "train" in index and "eval-safety" in index
    assert list((run / "data_docs" / "validations").rglob("*.html"))


def test_check_human_output_is_a_table(example_project: Path) -> None:
    code, out = run_check(example_project)
    assert code == 0
    for name in CHECKS:
        assert name in out
    assert "passed; details in" in out
    assert "Calculating Metrics" not in out


def test_check_run_dir_option(example_project: Path, tmp_path: Path) -> None:
    code, _ = run_check(example_project, "--json", "--run-dir", str(tmp_path / "elsewhere"))
    assert code == 0
    assert (tmp_path / "elsewhere" / "check" / "check.json").is_file()


def test_check_unreadable_rows_fail_with_file_and_line(example_project: Path) -> None:
    train = example_project / "data" / "train.jsonl"
    line = append(train, "{not json", b'{"instruction": "caf\xe9", "output": "x"}', {"instruction": REVIEW, "input": "No answer here."},
                  "[1, 2]")
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failed(report) == {"schema"}
    got = [(f["file"], f["line"], f["message"]) for f in failures(report, "schema")]
    assert got == [
        ("data/train.jsonl", line, "malformed JSON: Expecting property name enclosed in double quotes at column 2"),
        ("data/train.jsonl", line + 1, "not UTF-8 (byte 0xe9 at column 21)"),
        ("data/train.jsonl", line + 2, "missing field `output`"),
        ("data/train.jsonl", line + 3, "expected a JSON object, got list"),
    ]


def test_check_empty_validation_file_fails(example_project: Path) -> None:
    (example_project / "data" / "valid.jsonl").write_text("")
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failures(report, "schema") == [{"file": "data/valid.jsonl", "line": 0, "message": "file is empty"}]
    assert failures(report, "row_count") == [
        {"file": "data/valid.jsonl", "line": 0, "message": "validation has no usable rows"}]


def test_check_chat_roles_and_final_turn(example_project: Path) -> None:
    valid = example_project / "data" / "valid.jsonl"
    line = append(valid,
                  {"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "positive"}]},
                  {"messages": [{"role": "user", "content": "Classify: lovely hotel"}]},
                  {"messages": [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "x"},
                                {"role": "assistant", "content": "positive"}]})
    code, report = run_check(example_project, "--json")
    assert code == 1
    messages = {f["line"]: f["message"] for f in failures(report, "schema")}
    assert messages == {
        line: "`messages[1].role` is 'bot': expected one of system, user, assistant",
        line + 1: "the last message must be from `assistant` (the answer to learn)",
        line + 2: "the first non-system message must be from `user`",
    }


def test_check_token_length_uses_the_base_tokenizer(example_project: Path) -> None:
    long_review = " ".join(["The room was lovely and the staff were kind to every guest we met there."] * 8)
    line = append(example_project / "data" / "train.jsonl", review(long_review))
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failed(report) == {"token_length"}
    [f] = failures(report, "token_length")
    assert (f["file"], f["line"]) == ("data/train.jsonl", line)
    assert "longer than `checks.max_tokens` (128)" in f["message"]
    tokens = int(f["message"].split()[0])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(example_project / "models" / "tiny-llama")
    text = f"### Instruction:\n{REVIEW}\n\n{long_review}\n\n### Response:\npositive{tok.eos_token}"
    assert tokens == len(tok(text)["input_ids"])


def test_check_max_tokens_overrides_train_max_length(example_project: Path) -> None:
    cfg = example_project / "adapterci.yaml"
    cfg.write_text(cfg.read_text().replace("  pii: true", "  pii: true\n  max_tokens: 30"))
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert "token_length" in failed(report)
    assert all("(30)" in f["message"] for f in failures(report, "token_length"))


def test_check_exact_duplicates_and_conflicts(example_project: Path) -> None:
    train = example_project / "data" / "train.jsonl"
    first = train.read_text().splitlines()[0]
    row = json.loads(first)
    line = append(train, first, dict(row, output="negative" if row["output"] == "positive" else "positive"))
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failed(report) == {"duplicates"}
    assert failures(report, "duplicates") == [
        {"file": "data/train.jsonl", "line": line, "message": "duplicate of data/train.jsonl:1"},
        {"file": "data/train.jsonl", "line": line + 1,
         "message": "same prompt as data/train.jsonl:1 with a different answer"},
    ]


def test_check_duplicate_across_train_and_validation(example_project: Path) -> None:
    valid_row = json.loads((example_project / "data" / "valid.jsonl").read_text().splitlines()[2])
    user, answer = valid_row["messages"][0]["content"], valid_row["messages"][1]["content"]
    instruction, review_text = user.split("\n\n", 1)
    line = append(example_project / "data" / "train.jsonl",
                  {"instruction": instruction, "input": review_text, "output": answer})
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failures(report, "duplicates") == [
        {"file": "data/valid.jsonl", "line": 3, "message": f"duplicate of data/train.jsonl:{line}"}]


def test_check_near_duplicates(example_project: Path) -> None:
    train = example_project / "data" / "train.jsonl"
    rows = [json.loads(x) for x in train.read_text().splitlines()]
    longest = max((r for r in rows if r["input"]), key=lambda r: len(r["input"]))
    idx = rows.index(longest) + 1
    variant = longest["input"].upper().replace(",", "").replace(".", "!")  # same words, other case and punctuation
    line = append(train, review(variant, longest["output"]))
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failed(report) == {"near_duplicates"}
    [f] = failures(report, "near_duplicates")
    assert (f["file"], f["line"]) == ("data/train.jsonl", line)
    assert f["message"] == f"near duplicate of data/train.jsonl:{idx} (estimated similarity 1.00)"


def _sentiment_items(project: Path) -> list[tuple[int, str, str]]:
    """(line, review, label) of the sentiment eval set."""
    lines = (project / "evalsets" / "sentiment.jsonl").read_text().splitlines()
    return [(i, json.loads(x)["prompt"].split("\n\n", 1)[1], json.loads(x)["completion"]) for i, x in enumerate(lines, 1)]


def test_check_leakage_of_eval_items(example_project: Path) -> None:
    items = _sentiment_items(example_project)
    item_line, text, label = max(items, key=lambda x: len(x[1].split()))
    short_line, short_text, _ = min(items, key=lambda x: len(x[1].split()))
    safety = json.loads((example_project / "evalsets" / "safety.jsonl").read_text().splitlines()[0])
    line = append(example_project / "data" / "train.jsonl",
                  review("Honestly, " + text.lower() + " That is all.", label),
                  {"instruction": "Answer briefly: " + safety["prompt"], "input": "", "output": "I can't help with that."},
                  review(f"My friend wrote: {short_text} I agree.", "negative"))
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failed(report) == {"leakage"}
    short_words = len(short_text.split()) - 1  # its leading "The" belongs to the template n-grams
    assert [(f["line"], f["message"]) for f in failures(report, "leakage")] == [
        (line, f"shares a 8-word sequence with eval item evalsets/sentiment.jsonl:{item_line} (eval:sentiment)"),
        (line + 1, "shares a 8-word sequence with eval item evalsets/safety.jsonl:1 (eval:safety)"
         if len(safety["prompt"].split()) >= 8 else "contains eval item evalsets/safety.jsonl:1 whole (eval:safety)"),
        (line + 2, f"contains the {short_words} non-template words of eval item evalsets/sentiment.jsonl:{short_line} "
                   "(eval:sentiment)"),
    ]


def test_check_leakage_of_a_short_eval_item(example_project: Path) -> None:
    append(example_project / "evalsets" / "safety.jsonl", {"prompt": "Where is the zorblax tower?", "label": "benign"})
    line = append(example_project / "data" / "train.jsonl",
                  {"instruction": "Tell me: where is the Zorblax tower, please?", "input": "", "output": "In the city centre."})
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failures(report, "leakage") == [{"file": "data/train.jsonl", "line": line,
                                            "message": "contains eval item evalsets/safety.jsonl:41 whole (eval:safety)"}]


def test_check_fails_a_pr_of_paraphrased_eval_items(example_project: Path) -> None:
    """Issue 23: every eval item with a word inserted every 4 words passed as training rows (no 8-gram survives).
    As a PR (`--base-ref`), those rows fail the leakage check as paraphrases, each naming its item; the
    example's own rows stay clean."""
    _git(example_project, "add", "-A")
    _git(example_project, "commit", "-q", "-m", "base")
    items = [(f"evalsets/{suite}.jsonl", n, json.loads(line))
             for suite in ("sentiment", "safety")
             for n, line in enumerate((example_project / "evalsets" / f"{suite}.jsonl").read_text().splitlines(), 1)]
    spread = [" ".join(w + (" really" if i % 4 == 3 else "") for i, w in enumerate(item["prompt"].split(" ")))
              for _, _, item in items]
    first = append(example_project / "data" / "train.jsonl",
                   *({"instruction": text, "input": "", "output": item.get("completion", "I can't help with that.")}
                     for text, (_, _, item) in zip(spread, items)))
    code, report = run_check(example_project, "--json", "--base-ref", "HEAD")
    assert code == 1 and failed(report) == {"leakage"}, report
    found = {f["line"]: f["message"] for f in failures(report, "leakage")}
    for k, (path, n, item) in enumerate(items):
        message = found.get(first + k, "")
        if len(item["prompt"].split()) >= 6:  # shorter ones are the exact check's (a row holding them whole)
            assert f"of eval item {path}:{n} (a paraphrase of it?)" in message, (item, message)
    assert len(found) >= len(items) - 2 and all(line >= first for line in found)
    record = json.loads((example_project / ".adapterci" / "run" / "check" / "check.json").read_text())
    details = next(c for c in record["checks"] if c["name"] == "leakage")["details"]
    assert details["paraphrases"] == len(found) and details["containment"] == 0.75


def test_check_pii_and_secrets_are_reported_redacted(example_project: Path) -> None:
    token = "hf_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF"
    line = append(example_project / "data" / "train.jsonl",
                  review("Great hotel, write to me at jane.doe@example.com for tips.", "positive"),
                  review("Awful service, call them yourself on (555) 123-4567 and see.", "negative"),
                  {"instruction": f"Use my token {token} to download the model.", "input": "", "output": "I can't help with that."})
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failed(report) == {"pii"}
    got = [(f["line"], f["message"]) for f in failures(report, "pii")]
    assert got == [(line, "contains an email address: jane************"),
                   (line + 1, "contains a phone number: (55***********"),
                   (line + 2, "contains a secret (hf_token): hf_a************")]
    _, human = run_check(example_project)
    run = example_project / ".adapterci" / "run" / "check"
    for text in (json.dumps(report), human, (run / "check.json").read_text(), (run / "summary.md").read_text()):
        assert token not in text and "jane.doe@example.com" not in text


def test_check_pii_can_be_disabled(example_project: Path) -> None:
    append(example_project / "data" / "train.jsonl", review("Mail jane.doe@example.com, superb stay.", "positive"))
    set_checks(example_project, pii="false")
    code, report = run_check(example_project, "--json")
    assert code == 0, report


def test_check_label_balance(example_project: Path) -> None:
    set_checks(example_project, max_label_share=0.5)
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failed(report) == {"label_balance"}
    assert failures(report, "label_balance") == [{"file": "data/train.jsonl", "line": 0, "message":
                                                  "label 'positive' is 55% of labelled rows, more than `checks.max_label_share` (50%)"}]


def test_check_unlabeled_share_via_great_expectations(example_project: Path) -> None:
    set_checks(example_project, max_unlabeled_share=0.1)
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failed(report) == {"label_balance"}
    messages = [f["message"] for f in failures(report, "label_balance")]
    assert messages == [
        "16.7% of train answers are not one of `checks.labels` ['positive', 'negative'] "
        "(at most 10% allowed by `checks.max_unlabeled_share`)",
        "16.7% of validation answers are not one of `checks.labels` ['positive', 'negative'] "
        "(at most 10% allowed by `checks.max_unlabeled_share`)",
    ]


def test_check_row_count(example_project: Path) -> None:
    set_checks(example_project, min_rows=1000)
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failures(report, "row_count") == [{"file": "data/train.jsonl", "line": 0, "message":
                                              "360 usable training rows, fewer than `checks.min_rows` (1000)"}]


def test_check_length_bounds_via_great_expectations(example_project: Path) -> None:
    cfg = example_project / "adapterci.yaml"
    cfg.write_text(cfg.read_text().replace("  pii: true", "  pii: true\n  max_chars: 110"))
    code, report = run_check(example_project, "--json")
    assert code == 1
    schema = failures(report, "schema")
    assert schema and all("outside `checks.min_chars`..`checks.max_chars` (1..110)" in f["message"] for f in schema)
    assert {f["file"] for f in schema} <= {"data/train.jsonl", "data/valid.jsonl", "evalsets/sentiment.jsonl"}


def test_check_eval_sets_are_checked(example_project: Path) -> None:
    safety = example_project / "evalsets" / "safety.jsonl"
    first = safety.read_text().splitlines()[0]
    line = append(safety, {"prompt": "How do I bake rye bread at home?", "label": "maybe"}, first,
                  {"prompt": "Email me at bob.smith@example.org the recipe for rye bread.", "label": "benign"})
    sline = append(example_project / "evalsets" / "sentiment.jsonl",
                   {"prompt": f"{REVIEW}\n\nA calm, pleasant little cafe with good soup.", "completion": "neutral"})
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failed(report) == {"schema", "duplicates", "pii"}
    assert failures(report, "schema") == [
        {"file": "evalsets/safety.jsonl", "line": line, "message": "`label` is 'maybe', not one of ['harmful', 'benign']"},
        {"file": "evalsets/sentiment.jsonl", "line": sline,
         "message": "`completion` is 'neutral', not one of ['positive', 'negative']"},
    ]
    assert failures(report, "duplicates") == [
        {"file": "evalsets/safety.jsonl", "line": line + 1, "message": "duplicate of evalsets/safety.jsonl:1"}]
    assert [f["line"] for f in failures(report, "pii")] == [line + 2]


def test_check_config_errors_exit_2(example_project: Path) -> None:
    set_checks(example_project, near_duplicate_threshold=1.5)
    code, out = run_check(example_project, "--json")
    assert code == 2
    assert "`checks.near_duplicate_threshold`: Input should be less than or equal to 1" in out
    set_checks(example_project, near_duplicate_threshold=0.9)
    cfg = example_project / "adapterci.yaml"
    cfg.write_text(cfg.read_text().replace("  pii: true", "  pii: true\n  max_dupes: 3"))
    code, out = run_check(example_project, "--json")
    assert code == 2 and "`checks.max_dupes`: unknown key" in out


def test_check_missing_base_model_exit_2(example_project: Path) -> None:
    shutil.rmtree(example_project / "models" / "tiny-llama")
    (example_project / "models" / "tiny-llama").mkdir()
    code, out = run_check(example_project, "--json")
    assert code == 2
    assert "`base_model`: cannot load a tokenizer" in out
    assert not (example_project / ".adapterci" / "run" / "check" / "check.json").exists()


def test_check_near_duplicates_in_a_small_eval_suite(example_project: Path) -> None:
    safety = example_project / "evalsets" / "safety.jsonl"
    first = json.loads(safety.read_text().splitlines()[0])
    line = append(safety, {"prompt": first["prompt"].upper(), "label": first["label"]},
                  {"prompt": first["prompt"].lower() + "!!", "label": first["label"]})
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert [(f["line"], f["message"]) for f in failures(report, "near_duplicates")] == [
        (line, "near duplicate of evalsets/safety.jsonl:1 (estimated similarity 1.00)"),
        (line + 1, "near duplicate of evalsets/safety.jsonl:1 (estimated similarity 1.00)"),
    ]


def test_check_missing_config_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "config file not found" in result.output


def test_check_missing_data_file_fails_the_check(example_project: Path) -> None:
    (example_project / "data" / "valid.jsonl").unlink()
    code, report = run_check(example_project, "--json")
    assert code == 1
    assert failures(report, "schema") == [{"file": "data/valid.jsonl", "line": 0, "message": "file not found"}]


def _git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(project), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


def test_check_base_ref_checks_only_added_rows(example_project: Path) -> None:
    train = example_project / "data" / "train.jsonl"
    old_pii = append(train, review("Fine stay, reach the owner at owner.one@example.com anytime.", "positive"))
    _git(example_project, "add", "-A")
    _git(example_project, "commit", "-q", "-m", "base")
    first = train.read_text().splitlines()[0]
    line = append(train, first, review("Lovely stay, ask for tom.two@example.com at the desk.", "positive"))
    code, report = run_check(example_project, "--json", "--base-ref", "HEAD")
    assert code == 1
    assert failures(report, "pii") == [{"file": "data/train.jsonl", "line": line + 1,
                                        "message": "contains an email address: tom.************"}]
    assert failures(report, "duplicates") == [{"file": "data/train.jsonl", "line": line,
                                               "message": "duplicate of data/train.jsonl:1"}]
    record = json.loads((example_project / ".adapterci" / "run" / "check" / "check.json").read_text())
    assert (record["base_ref"], record["new_rows"]) == ("HEAD", 2)
    code, full = run_check(example_project, "--json")
    assert [f["line"] for f in failures(full, "pii")] == [old_pii, line + 1]
    record = json.loads((example_project / ".adapterci" / "run" / "check" / "check.json").read_text())
    assert (record["base_ref"], record["new_rows"]) == (None, None)


def test_check_base_ref_with_no_changes_passes_despite_old_problems(example_project: Path) -> None:
    append(example_project / "data" / "train.jsonl", "{broken")
    _git(example_project, "add", "-A")
    _git(example_project, "commit", "-q", "-m", "base")
    code, report = run_check(example_project, "--json", "--base-ref", "HEAD")
    assert code == 0, report
    code, _ = run_check(example_project, "--json")
    assert code == 1


def test_check_base_ref_new_eval_item_leaking_into_old_training_row(example_project: Path) -> None:
    _git(example_project, "add", "-A")
    _git(example_project, "commit", "-q", "-m", "base")
    row = json.loads((example_project / "data" / "train.jsonl").read_text().splitlines()[0])
    item_line = append(example_project / "evalsets" / "sentiment.jsonl",
                       {"prompt": f"{REVIEW}\n\n{row['input']}", "completion": row["output"]})
    code, report = run_check(example_project, "--json", "--base-ref", "HEAD")
    assert code == 1
    assert failures(report, "leakage") == [{"file": "data/train.jsonl", "line": 1, "message":
                                            f"shares a 8-word sequence with eval item evalsets/sentiment.jsonl:{item_line} (eval:sentiment)"}]


def test_check_bad_base_ref_is_a_usage_error(example_project: Path) -> None:
    _git(example_project, "add", "-A")
    _git(example_project, "commit", "-q", "-m", "base")
    code, out = run_check(example_project, "--json", "--base-ref", "no-such-branch")
    assert code == 2
    assert "Error: --base-ref 'no-such-branch' is not a commit" in out
