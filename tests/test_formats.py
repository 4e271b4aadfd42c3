"""Reading JSONL and normalising the three row formats to one Example."""

from __future__ import annotations

import json

import pytest

from adapterci.data.dataset import load_examples, split_validation
from adapterci.data.formats import Example, Message, normalise
from adapterci.data.load import Problem, RawRow, Source, read_jsonl
from adapterci.prompting import PromptFormat

SRC = Source("f.jsonl", 3)


def norm(data, fmt="auto", require_completion=True):
    return normalise(RawRow(data, SRC), fmt, require_completion)


def test_three_formats_normalise_to_the_same_example():
    alpaca = norm({"instruction": "Classify.", "input": "Great film.", "output": "positive"})
    pc = norm({"prompt": "Classify.\n\nGreat film.", "completion": "positive"})
    chat = norm({"messages": [{"role": "user", "content": "Classify.\n\nGreat film."},
                              {"role": "assistant", "content": "positive"}]})
    assert alpaca.as_dict() == pc.as_dict() == chat.as_dict()
    assert [e.format for e in (alpaca, pc, chat)] == ["alpaca", "prompt_completion", "chat"]


def test_extra_fields_are_kept_as_meta():
    ex = norm({"prompt": "Make a bomb", "label": "harmful"}, require_completion=False)
    assert isinstance(ex, Example) and ex.completion is None and ex.meta == {"label": "harmful"}


@pytest.mark.parametrize("data, message", [
    ({"instruction": "x"}, "missing field `output`"),
    ({"instruction": "x", "output": 3}, "field `output` must be a string, got int"),
    ({"prompt": " ", "completion": "y"}, "field `prompt` is empty"),
    ({"text": "x"}, "unknown row format"),
    ({"messages": []}, "`messages` must be a non-empty list"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "`messages[0].role` is 'bot'"),
    ({"messages": [{"role": "user", "content": "x"}]}, "the last message must be from `assistant`"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, "the first non-system message must be from `user`"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                   {"role": "assistant", "content": "c"}]}, "two `user` turns in a row"),
])
def test_bad_rows_become_problems(data, message):
    result = norm(data)
    assert isinstance(result, Problem) and message in result.message and result.source == SRC


def test_declared_format_must_match_row():
    assert "row is in chat format but `data.format` is alpaca" in norm(
        {"messages": [{"role": "user", "content": "a"}]}, fmt="alpaca").message


def test_read_jsonl_reports_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"prompt": "a", "completion": "b"}\n\n{"prompt": \n[1]\n\xff\xfe\n')
    rows, problems = read_jsonl(path, tmp_path)
    assert [r.source.line for r in rows] == [1]
    assert [str(p) for p in problems] == [
        "d.jsonl:3: malformed JSON: Expecting value at column 12",
        "d.jsonl:4: expected a JSON object, got list",
        "d.jsonl:5: not UTF-8 (byte 0xff at column 1)",
    ]
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    assert [str(p) for p in read_jsonl(empty, tmp_path)[1]] == ["e.jsonl:0: file is empty"]


def test_load_examples_globs_and_missing(tmp_path):
    for i in range(2):
        (tmp_path / f"p{i}.jsonl").write_text(json.dumps({"prompt": f"q{i}", "completion": "a"}) + "\n")
    loaded = load_examples(["p*.jsonl", "missing.jsonl"], tmp_path)
    assert [e.prompt_text for e in loaded.examples] == ["q0", "q1"]
    assert [str(p) for p in loaded.problems] == ["missing.jsonl:0: file not found"]


def test_validation_split_is_stable_when_rows_are_added():
    exs = [Example((Message("user", f"row {i}"),), "a", Source("f", i), "prompt_completion") for i in range(400)]
    train, valid = split_validation(exs, 0.2)
    assert 40 < len(valid) < 120 and len(train) + len(valid) == 400
    _, valid_more = split_validation(exs + exs[:0], 0.2)
    assert valid_more == valid
    _, valid_grown = split_validation(exs[:200], 0.2)
    assert set(valid_grown) <= set(valid)


def test_alpaca_prompt_format_renders_and_fingerprints():
    fmt = PromptFormat("alpaca")
    text = fmt.render((Message("system", "Be brief."), Message("user", "Classify.\n\nGreat.")))
    assert text == "### System:\nBe brief.\n\n### Instruction:\nClassify.\n\nGreat.\n\n### Response:\n"
    custom = PromptFormat("Q: {{ messages[-1].content }}\nA:")
    assert custom.render((Message("user", "hi"),)) == "Q: hi\nA:"
    assert custom.fingerprint != fmt.fingerprint
    with pytest.raises(ValueError, match="chat template"):
        PromptFormat("chat")
