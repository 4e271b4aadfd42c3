"""Hostile or careless policy and config input (issue 25): adapterci.yaml, its prompt template, gate rules and the
results files a gate reads. Each is refused with exit 2 and a message naming the key and its YAML line (or the
file), without a traceback and without writing anything."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli

pytestmark = pytest.mark.timeout(120)


def edit(project: Path, old: str, new: str) -> None:
    config = project / "adapterci.yaml"
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new, 1))


def line_of(project: Path, snippet: str) -> int:
    """The 1-based line of the first line of the project's config holding `snippet`."""
    lines = (project / "adapterci.yaml").read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if snippet in text)


def validate(project: Path):
    """`adapterci validate` on the project's config; asserts the refusal's common shape (exit 2, no traceback,
    nothing written) and returns the output."""
    result = CliRunner().invoke(cli, ["validate", str(project / "adapterci.yaml")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: invalid config {(project / 'adapterci.yaml').resolve()}:")
    assert "Traceback" not in result.output
    assert not (project / ".adapterci").exists()
    return result.output


# --- gate.rules: a policy without rules passes everything ------------------------------------------------------


def test_a_policy_without_rules_is_a_config_error(example_project: Path) -> None:
    text = (example_project / "adapterci.yaml").read_text()
    gate = text[text.index("\ngate:\n") + 1:text.index("  significance: 0.05\n")]
    edit(example_project, gate, "gate:\n  rules: []\n")
    out = validate(example_project)
    assert f"line {line_of(example_project, 'rules: []')}: `gate.rules`: no rules: a release policy without rules " \
           "would pass every adapter" in out
    edit(example_project, "  rules: []\n", "")
    out = validate(example_project)
    assert f"line {line_of(example_project, 'gate:')}: `gate.rules`: missing: a release policy needs at least one rule" in out
    edit(example_project, "gate:\n", "")
    edit(example_project, "  significance: 0.05\n", "")
    out = validate(example_project)
    assert "`gate`: the `gate:` section is missing: a release policy needs at least one rule in `gate.rules`" in out


# --- prompt_template: a Jinja template is code, rendered with bounded work -------------------------------------

CONTENT = "{% for m in messages %}{{ m.content }}{% endfor %}"
HOSTILE_TEMPLATES = {
    "nested-ranges": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}" + CONTENT,
    "repeat-10-GB": "{{ 'x' * 10**10 }}" + CONTENT,
    "center-1-GB": "{{ 'a' | center(1000000000) }}" + CONTENT,
    "format-width-1-GB": "{{ '%0999999999d' | format(1) }}{{ '{:>999999999}'.format(1) }}" + CONTENT,
    "doubling-concat": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
                       + CONTENT,
    "huge-power": "{{ 7 ** 999999999 }}" + CONTENT,
    "printed-in-a-loop": "{% for i in range(99999) %}{{ messages[0].content * 1000 }}{% endfor %}" + CONTENT,
    "replace-amplifier": "{{ ('x' * 99999) | replace('', 'y' * 99999) }}" + CONTENT,
    "endless-macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}" + CONTENT,
    "too-deeply-nested": "{% for i in [1] %}" * 30 + CONTENT + "{% endfor %}" * 30,
    "division-by-zero": "{{ 1 / 0 }}" + CONTENT,
}


@pytest.mark.parametrize("template", HOSTILE_TEMPLATES.values(), ids=HOSTILE_TEMPLATES)
def test_a_hostile_prompt_template_is_refused_quickly(example_project: Path, template: str) -> None:
    import json

    edit(example_project, "prompt_template: alpaca ", f"prompt_template: {json.dumps(template)} ")
    started = time.perf_counter()
    out = validate(example_project)
    assert time.perf_counter() - started < 5
    assert f"line {line_of(example_project, 'prompt_template:')}: `prompt_template`: the Jinja template does not " \
           "work" in out


def test_a_bounded_template_still_renders_long_messages() -> None:
    """The budget grows with the messages: a template that prints a long message a few times is not refused."""
    from adapterci.data.formats import Message
    from adapterci.prompting import PromptFormat, template_problem

    template = ("{% set ns = namespace(sys='') %}{% for m in messages if m.role == 'system' %}{% set ns.sys = m.content %}"
                "{% endfor %}[SYS]{{ ns.sys }}{% for m in messages if m.role != 'system' %}\n{{ m.role | upper }}: "
                "{{ m.content | trim }}{% endfor %}\n{{ messages | tojson(indent=2) | length }} {{ '%s/%d' % ('a', 2) }}")
    assert template_problem(template) is None
    long = "word " * 200_000
    text = PromptFormat(template).render((Message("system", "Be brief."), Message("user", long)))
    assert text.startswith("[SYS]Be brief.\nUSER: word word") and text.endswith(" a/2") and len(text) > 1_000_000


# --- results.json: what a gate reads --------------------------------------------------------------------------


def write_results(directory: Path, **changes) -> Path:
    """A small valid results.json + items.jsonl in `directory`, with `changes` applied to results.json."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    item = {"suite": "sentiment", "source": "evalsets/sentiment.jsonl:1", "expected": "positive", "label": None,
            "models": {"base": {"answer": "negative", "correct": False}, "candidate": {"answer": "positive", "correct": True}}}
    (directory / "items.jsonl").write_text("".join(json.dumps({**item, "index": i, "prompt": f"p{i}"}) + "\n"
                                                   for i in range(3)))
    data = {"format_version": 1, "items_file": "items.jsonl", "models": {"base": {}, "champion": None, "candidate": {}},
            "suites": {"sentiment": {"kind": "task", "n": 3, "labels": ["positive", "negative"]}}}
    data.update(changes)
    (directory / "results.json").write_text(json.dumps(data))
    return directory / "results.json"


def gate(project: Path, results: Path):
    result = CliRunner().invoke(cli, ["gate", "--config", str(project / "adapterci.yaml"), "--results", str(results),
                                      "--run-dir", str(project / "run")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (project / "run" / "gate.json").exists()
    return result.output


def test_results_items_file_outside_the_results_directory_is_refused(example_project: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "items.jsonl"
    write_results(secret.parent)
    results_dir = example_project / "results"
    for items_file in ("../../outside/items.jsonl", str(secret)):
        out = gate(example_project, write_results(results_dir, items_file=items_file))
        assert f"{results_dir / 'results.json'}: `items_file` {items_file!r} leads outside the results' " \
               f"directory {results_dir.resolve()}" in out and "re-run `adapterci eval`" in out
    (results_dir / "linked.jsonl").symlink_to(secret)
    out = gate(example_project, write_results(results_dir, items_file="linked.jsonl"))
    assert "`items_file` 'linked.jsonl' (through a symlink) leads outside the results' directory" in out
    out = gate(example_project, write_results(results_dir, items_file="missing.jsonl"))
    assert "`items_file` 'missing.jsonl' not found" in out


@pytest.mark.parametrize("changes, says", [
    ({"suites": {"sentiment": {"kind": "task", "n": "many"}}}, "`suites.sentiment.n` is 'many', not a count of items"),
    ({"suites": {"sentiment": {"kind": "task", "n": True}}}, "`suites.sentiment.n` is True, not a count of items"),
    ({"suites": {"sentiment": {"kind": "task", "n": -3}}}, "`suites.sentiment.n` is -3, not a count of items"),
    ({"suites": {"sentiment": {"kind": "poem", "n": 3}}}, "`suites.sentiment.kind` is 'poem', not `task`, `safety` or `preference`"),
    ({"suites": {"sentiment": {"kind": "task", "n": 3, "labels": "positive"}}}, "`suites.sentiment.labels` is 'positive', not a list of labels"),
    ({"suites": []}, "`suites` is missing or not an object"),
    ({"models": {"base": "x"}}, "every entry of `models` must be an object or null"),
    ({"format_version": "1"}, "`format_version` is '1', not a number"),
])
def test_results_with_values_of_the_wrong_type_are_a_usage_error(example_project: Path, changes, says) -> None:
    results = write_results(example_project / "results", **changes)
    out = gate(example_project, results)
    assert f"Error: {results}: {says}; re-run `adapterci eval`" in out


def test_results_nested_too_deeply_are_a_usage_error(example_project: Path) -> None:
    results = write_results(example_project / "results")
    (results.parent / "items.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    out = gate(example_project, results)
    assert f"cannot read eval results {results.parent / 'items.jsonl'}: nested too deeply" in out


# --- numbers: every numeric key has an upper bound ---------------------------------------------------------------


def numeric_fields_without_upper_bound() -> list[str]:
    """Every int or float key of the config schema (list items included) that has no `le`/`lt` bound."""
    import typing

    from pydantic import BaseModel

    from adapterci.config import Config

    found: list[str] = []

    def visit(annotation, metadata: list, key: str) -> None:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is typing.Annotated:
            extra = [m for a in args[1:] for m in (getattr(a, "metadata", None) or [a])]
            visit(args[0], metadata + extra, key)
        elif args and origin is not typing.Literal:
            for arg in args:
                visit(arg, metadata if origin is not list else [], f"{key}[]" if origin is list else key)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            walk(annotation, key)
        elif annotation in (int, float):
            if not any(type(m).__name__ in ("Le", "Lt") for m in metadata):  # annotated_types' upper bounds
                found.append(key)

    def walk(model, prefix: str) -> None:
        for name, field in model.model_fields.items():
            visit(field.annotation, list(field.metadata), f"{prefix}.{name}" if prefix else name)

    walk(Config, "")
    return found


def test_every_numeric_config_key_has_an_upper_bound() -> None:
    assert numeric_fields_without_upper_bound() == []


def test_the_schema_walk_sees_numeric_keys_and_list_items() -> None:
    """The walk is not vacuous: it reaches nested sections, optional numbers and list items."""
    from pydantic import Field

    from adapterci.configbase import StrictModel

    class Loose(StrictModel):
        a: int = 1
        b: float | None = None
        c: list[int] = Field(default_factory=list)
        d: int = Field(1, le=5)

    import adapterci.config as config

    original = config.Config.model_fields["cost"]
    try:
        config.Config.model_fields["cost"] = type(original)(annotation=Loose, default_factory=Loose)
        assert numeric_fields_without_upper_bound() == ["cost.a", "cost.b", "cost.c[]"]
    finally:
        config.Config.model_fields["cost"] = original


@pytest.mark.parametrize("old, new, key, says", [
    ("  significance: 0.05\n", "  significance: 0.05\n  bootstrap_resamples: 1000000000000000\n",
     "gate.bootstrap_resamples", "Input should be less than or equal to 20000"),
    ("    r: 16", "    r: 1000000", "train.lora.r", "Input should be less than or equal to 4096"),
    ("  batch_size: 16", "  batch_size: 100000000", "train.batch_size", "Input should be less than or equal to 65536"),
    ("  max_length: 128", "  max_length: 99999999999", "train.max_length", "Input should be less than or equal to 1048576"),
    ("  seed: 42", "  seed: -1", "train.seed", "Input should be greater than or equal to 0"),
    ("kind: safety, max_new_tokens: 24", "kind: safety, max_new_tokens: 10000000", "eval.suites[1].max_new_tokens",
     "Input should be less than or equal to 65536"),
    ("  max_age: 7d", "  max_age: " + "9" * 400 + "w", "canary.max_age", "is longer than a canary may run (520w)"),
])
def test_huge_numbers_in_the_config_are_config_errors(example_project: Path, old, new, key, says) -> None:
    edit(example_project, old, new)
    out = validate(example_project)
    line = line_of(example_project, new.strip().splitlines()[-1].split(":")[0] + ":") if key != "eval.suites[1].max_new_tokens" \
        else line_of(example_project, "max_new_tokens: 10000000")
    assert f"line {line}: `{key}`: " in out and says in out, out


# --- errors pinned on their own key ------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, key, says", [
    ("modules_to_save: [embed_tokens, lm_head]", "modules_to_save: [embed_tokens, lm_haed]", "train.lora.modules_to_save",
     "the base model has no module named 'lm_haed'"),
    ("target_modules: all-linear", "target_modules: [q_proj, nope_proj]", "train.lora.target_modules",
     "the base model has no module named 'nope_proj'"),
    ("target_modules: all-linear", "target_modules: [nope_proj]", "train.lora.target_modules", "nope_proj"),
])
def test_a_lora_setting_the_model_cannot_take_names_its_key_before_training(example_project: Path, old, new, key,
                                                                            says) -> None:
    """PEFT ignored an unknown `modules_to_save` name, and every ValueError of loading was pinned on `base_model`."""
    edit(example_project, old, new)
    edit(example_project, "  epochs: 10\n", "  epochs: 10\n  max_steps: 1\n")  # cheap, were it not refused
    run_dir = example_project / "run"
    result = CliRunner().invoke(cli, ["train", "--config", str(example_project / "adapterci.yaml"),
                                      "--run-dir", str(run_dir)])
    assert result.exit_code == 2, result.output
    assert f"line {line_of(example_project, new.split(':')[0] + ':')}: `{key}`: " in result.output and says in result.output
    assert "`base_model`" not in result.output and "Traceback" not in result.output
    assert not (run_dir / "adapter").exists() and not list(run_dir.rglob("checkpoint-*"))


def test_chat_template_without_one_in_the_tokenizer_names_prompt_template(example_project: Path) -> None:
    """`prompt_template: chat` with a tokenizer that has no chat template was an internal ValueError."""
    model = example_project / "models" / "tiny-llama"
    if model.is_symlink():
        import shutil

        target = model.resolve()
        model.unlink()
        shutil.copytree(target, model)
    (model / "chat_template.jinja").unlink()
    edit(example_project, "prompt_template: alpaca ", "prompt_template: chat ")
    result = CliRunner().invoke(cli, ["check", "--config", str(example_project / "adapterci.yaml")])
    assert result.exit_code == 2, result.output
    assert f"line {line_of(example_project, 'prompt_template:')}: `prompt_template`: `chat` uses the tokenizer's " \
           "chat template" in result.output and "internal error" not in result.output


# --- silent or unclear: numbers, names and lists that validated but meant nothing -------------------------------


@pytest.mark.parametrize("rule, says", [
    ("sentiment.accuracy >= 1e999", "1e999 is too large to be a number (it reads as infinity)"),
    ("sentiment.accuracy >= base + 1e400", "1e400 is too large to be a number"),
    ("safety.leak_rate <= 1e308 + 1e308", "the threshold 1e308 + 1e308 is too large to be a number"),
    ("safety.leak_rate <= inf", "`inf` is not a finite number"),
    ("safety.leak_rate <= nan", "`nan` is not a finite number"),
])
def test_a_non_finite_number_in_a_gate_rule_is_a_config_error(example_project: Path, rule, says) -> None:
    """`1e999` passed and wrote `Infinity` (not JSON) into gate.json."""
    edit(example_project, '    - "safety.leak_rate <= 0"\n', f'    - "{rule}"\n')
    out = validate(example_project)
    assert f"line {line_of(example_project, rule)}: `gate.rules[4]`: rule '{rule}': {says}" in out, out


def test_a_non_finite_factor_in_a_canary_rule_is_a_config_error(example_project: Path) -> None:
    edit(example_project, '"latency.p95 <= stable * 1.10"', '"latency.p95 <= stable * 1e999"')
    out = validate(example_project)
    assert f"line {line_of(example_project, 'stable * 1e999')}: `canary.rules[2]`: rule 'latency.p95 <= stable * " \
           "1e999': 1e999 is too large to be a number" in out


@pytest.mark.parametrize("old, new, key, says", [
    ("base_model: models/tiny-llama", 'base_model: ""', "base_model", "names no model"),
    ("base_model: models/tiny-llama", 'base_model: "  "', "base_model", "names no model"),
    ("base_model: models/tiny-llama", "base_model: .", "base_model", "names no model"),
    ("train: data/train.jsonl", "train: []", "data.train", "an empty list: name at least one file or glob"),
    ("train: data/train.jsonl", "train: ['']", "data.train", "an empty path"),
    ("validation: data/valid.jsonl", "validation: []", "data.validation", "(or remove `validation`)"),
    ("labels: [positive, negative]", "labels: []", "checks.labels", "an empty list: name the labels"),
    ("labels: [positive, negative]", 'labels: [positive, negative, "p\\u043esitive"]', "checks.labels",
     "label 'positive' and 'p\u043esitive' read the same (U+043E CYRILLIC SMALL LETTER O)"),
    ("labels: [positive, negative]", 'labels: [positive, negative, "NEGATIVE"]', "checks.labels",
     "label 'negative' and 'NEGATIVE' read the same (they differ only in case or spacing)"),
    ("labels: [positive, negative]", 'labels: [positive, "ne\\u200bgative", negative]', "checks.labels",
     "(U+200B ZERO WIDTH SPACE)"),
    ("labels: [positive, negative]", 'labels: [positive, "\\uff50ositive"]', "checks.labels",
     "(U+FF50 FULLWIDTH LATIN SMALL LETTER P)"),
    ("choices: [positive, negative]}", "choices: []}", "eval.suites[0].choices", "an empty list: name the choices"),
    ("choices: [positive, negative]}", "choices: [positive, negative, positive]}", "eval.suites[0].choices",
     "choice 'positive' is repeated"),
    ("choices: [positive, negative]}", 'choices: [positive, "\\u03bfk", "ok"]}', "eval.suites[0].choices",
     "(U+03BF GREEK SMALL LETTER OMICRON)"),
])
def test_empty_or_indistinguishable_values_are_config_errors(example_project: Path, old, new, key, says) -> None:
    edit(example_project, old, new)
    out = validate(example_project)
    assert f"line {line_of(example_project, new.split(':')[0].strip() + ':')}: `{key}`: " in out and says in out, out


def test_homoglyph_answers_in_the_data_are_label_variants() -> None:
    """`check` and `train` flag a row whose answer reads as a label but is written with lookalike letters."""
    from adapterci.data.formats import Example, Message
    from adapterci.data.labels import label_variants
    from adapterci.data.load import Source

    rows = [Example((Message("user", "Good?"),), answer, Source("data/train.jsonl", i), "chat")
            for i, answer in enumerate(["positive", "p\u043esitive", "posi\u200btive", "negative"], 1)]
    assert [(p.source.line, p.message.split(" is ")[0]) for p in label_variants(rows, ["positive", "negative"])] == [
        (2, "answer 'p\u043esitive'"), (3, "answer 'posi\\u200btive'")]


def test_results_without_n_count_their_items(tmp_path: Path) -> None:
    """Older or hand-made results without `n`: the gate counted on it (KeyError); it is the suite's item count."""
    from adapterci.eval.results import EvalResults

    results = write_results(tmp_path / "results", suites={"sentiment": {"kind": "task", "labels": None}})
    assert EvalResults.load(results).suites["sentiment"]["n"] == 3
