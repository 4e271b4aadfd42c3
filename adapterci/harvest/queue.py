"""The labeling queue: one item per failed request, written as JSONL and CSV and as import files for Argilla and
Label Studio, and read back (reviewed) from any of them, Label Studio's export and Argilla's record export
included. Every reader returns the same item dicts (`FIELDS`), each with the `file:line` it was read from."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from adapterci.errors import UsageError
from adapterci.fsio import write_json_atomic, write_jsonl_atomic, write_text_atomic
from adapterci.harvest.cluster import Cluster

REVIEW_LABELS = {"fixed": "the model's answer was wrong: `answer` holds the corrected one",
                 "correct": "the model's answer was right after all: `answer` keeps it",
                 "discard": "not usable (spam, unclear, out of scope): dropped"}
"""The label set: what a reviewer decides for each item."""
PROVENANCE = ("id", "cluster", "cluster_name", "rank", "reason", "error_type", "category", "request_id", "version",
              "time", "source", "redacted")
"""What harvest knows about an item; the reviewer leaves these as they are."""
FIELDS = ("id", "cluster", "cluster_name", "rank", "reason", "error_type", "category", "prompt", "draft", "answer",
          "label", "reviewer", "request_id", "version", "time", "source", "redacted")
METADATA = tuple(f for f in PROVENANCE if f != "id")
_ARGILLA_QUESTIONS = ("label", "answer")


def items_of(clusters: list[Cluster], limit: int | None) -> list[dict[str, Any]]:
    """Queue items, clusters in rank order; with `limit`, taken round-robin over the ranked clusters (the first
    request of each cluster, then the second...) so that a huge cluster cannot fill the whole queue."""
    picked: list[list] = [[] for _ in clusters]
    total, depth = 0, 0
    while limit is None or total < limit:
        progressed = False
        for slot, c in zip(picked, clusters):
            if depth < c.size and (limit is None or total < limit):
                slot.append(c.members[depth])
                total, progressed = total + 1, True
        if not progressed:
            break
        depth += 1
    items = []
    for rank, (c, members) in enumerate(zip(clusters, picked), 1):
        for m in members:
            items.append({"id": f"q{len(items) + 1:06d}", "cluster": c.id, "cluster_name": c.name, "rank": rank,
                          "reason": m.reason, "error_type": m.error, "category": m.category, "prompt": m.prompt,
                          "draft": m.response, "answer": m.response, "label": "", "reviewer": "",
                          "request_id": m.request_id, "version": m.version, "time": iso(m.timestamp),
                          "source": m.where, "redacted": list(m.redacted)})
    return items


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- writers ------------------------------------------------------------------------------------------------
def write_queue(out: Path, items: list[dict[str, Any]]) -> dict[str, str]:
    """Write the queue in every format into `out`; returns {format: path}."""
    paths = {"jsonl": out / "queue.jsonl", "csv": out / "queue.csv",
             "argilla_settings": out / "argilla" / "settings.json", "argilla": out / "argilla" / "records.json",
             "label_studio_config": out / "label_studio" / "config.xml",
             "label_studio": out / "label_studio" / "tasks.json"}
    write_jsonl_atomic(paths["jsonl"], items)
    write_text_atomic(paths["csv"], _csv(items))
    write_json_atomic(paths["argilla_settings"], argilla_settings())
    write_json_atomic(paths["argilla"], [argilla_record(i) for i in items])
    write_text_atomic(paths["label_studio_config"], label_studio_config())
    write_json_atomic(paths["label_studio"], [label_studio_task(i) for i in items])
    return {k: str(v) for k, v in paths.items()}


def _csv(items: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({**i, "redacted": ",".join(i["redacted"])} for i in items)
    return buffer.getvalue()


def argilla_settings() -> dict[str, Any]:
    """The dataset settings, as the arguments of `rg.Settings` (docs/harvest.md shows how to create it)."""
    return {
        "guidelines": "Each record is a production request that failed. Read the prompt and the model's answer, "
                      "write the correct answer in `answer` (it starts as the model's), and pick a label: "
                      + "; ".join(f"`{k}`: {v}" for k, v in REVIEW_LABELS.items()) + ".",
        "fields": [{"name": "prompt", "title": "Prompt", "type": "text", "required": True},
                   {"name": "draft", "title": "The model's answer", "type": "text", "required": False}],
        "questions": [{"name": "label", "title": "Decision", "type": "label_selection",
                       "labels": list(REVIEW_LABELS), "required": True},
                      {"name": "answer", "title": "The correct answer", "type": "text", "required": True}],
        "metadata": [{"name": name, "type": "integer" if name == "rank" else "terms"} for name in METADATA],
    }


def argilla_record(item: dict[str, Any]) -> dict[str, Any]:
    """A record as `Dataset.records.log` takes it: keys of fields, metadata and questions (the draft answer is the
    `answer` question's suggestion)."""
    return {"id": item["id"], "prompt": item["prompt"], "draft": item["draft"], "answer": item["draft"],
            **{k: _flat(item[k]) for k in METADATA}}


def label_studio_config() -> str:
    """The labeling interface: the prompt and the draft shown, the answer edited (pre-filled by the prediction),
    one decision chosen."""
    choices = "\n".join(f'    <Choice value="{label}"/>' for label in REVIEW_LABELS)
    return ('<View>\n  <Header value="Prompt"/>\n  <Text name="prompt" value="$prompt"/>\n'
            '  <Header value="The model\'s answer"/>\n  <Text name="draft" value="$draft"/>\n'
            '  <Header value="The correct answer"/>\n'
            '  <TextArea name="answer" toName="prompt" editable="true" maxSubmissions="1" required="true"/>\n'
            f'  <Choices name="label" toName="prompt" choice="single" required="true">\n{choices}\n  </Choices>\n'
            '</View>\n')


def label_studio_task(item: dict[str, Any]) -> dict[str, Any]:
    """A task in Label Studio's JSON import format: `data` holds every field, the draft is a prediction."""
    return {"data": {k: _flat(item[k]) for k in FIELDS if k not in ("answer", "label", "reviewer")},
            "predictions": [{"model_version": item["version"], "result": [
                {"from_name": "answer", "to_name": "prompt", "type": "textarea", "value": {"text": [item["draft"]]}}]}]}


def _flat(value: Any) -> Any:
    return ",".join(value) if isinstance(value, list) else value


# --- readers ------------------------------------------------------------------------------------------------
class ReviewError(UsageError):
    """A reviewed queue that cannot be read or has bad items (each named by file:line). Exit 2."""


def read_review(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(`file:line`, item) of every item of a reviewed queue in any supported format: queue JSONL or CSV, the
    Argilla records (as written, or as exported: flat `QUESTION.responses` or nested `responses`), the Label
    Studio tasks (as written or exported with `annotations`, also JSON-MIN). Items keep every field of FIELDS;
    the review fields come from the tool's answers."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReviewError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ReviewError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if Path(path).suffix.lower() == ".csv":
        rows = _csv_rows(path, text)
    elif text.lstrip().startswith("["):
        rows = _json_array(path, text)
    else:
        rows = _jsonl_rows(path, text)
    not_object = ValueError("an item must be a JSON object")
    return [(where, _item(raw) if isinstance(raw, dict) else raw if isinstance(raw, ValueError) else not_object)
            for where, raw in rows]


def _csv_rows(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            yield f"{path}:{reader.line_num}", {k: v for k, v in row.items() if k is not None}
    except csv.Error as exc:
        raise ReviewError(f"{path}:{reader.line_num + 1}: not readable as CSV ({exc})") from None


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                yield f"{path}:{number}", json.loads(line)
            except ValueError as exc:
                yield f"{path}:{number}", ValueError(f"not JSON ({exc})")


def _json_array(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    """The elements of a JSON array, each with the line it starts on."""
    decoder, pos = json.JSONDecoder(), text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        where = f"{path}:{text.count(chr(10), 0, pos) + 1}"
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            yield where, ValueError(f"not JSON ({exc})")
            return
        yield where, value


def _item(raw: dict[str, Any]) -> dict[str, Any]:
    """An item from a row of any format (absent fields stay absent: validation names them)."""
    if "data" in raw and isinstance(raw["data"], dict):  # Label Studio: import or export format
        item = dict(raw["data"])
        item.update(_label_studio_review(raw.get("annotations")))
    elif "fields" in raw and isinstance(raw["fields"], dict):  # Argilla, nested (to_list(flatten=False))
        item = {**raw.get("metadata", {}), **raw["fields"], "id": raw.get("id")}
        item.update(_argilla_nested(raw.get("responses")))
    else:  # queue JSONL/CSV, Argilla flat records and exports, Label Studio JSON-MIN
        item = dict(raw)
        item.update(_argilla_flat(raw))
        if "annotator" in raw and not raw.get("reviewer"):
            item["reviewer"] = raw["annotator"]
    if isinstance(item.get("redacted"), str):
        item["redacted"] = [k for k in item["redacted"].split(",") if k]
    if isinstance(item.get("rank"), str) and item["rank"].isdigit():
        item["rank"] = int(item["rank"])
    return item


def _argilla_flat(raw: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for question in _ARGILLA_QUESTIONS:
        values, users = raw.get(f"{question}.responses"), raw.get(f"{question}.responses.users")
        if isinstance(values, list) and values:
            out[question] = values[0]
            if isinstance(users, list) and users:
                out["reviewer"] = str(users[0])
    return out


def _argilla_nested(responses: Any) -> dict[str, Any]:
    out = {}
    for question in _ARGILLA_QUESTIONS:
        answers = responses.get(question) if isinstance(responses, dict) else None
        if isinstance(answers, list) and answers and isinstance(answers[0], dict):
            out[question] = answers[0].get("value")
            if answers[0].get("user_id"):
                out["reviewer"] = str(answers[0]["user_id"])
    return out


def _label_studio_review(annotations: Any) -> dict[str, Any]:
    """The review of the last annotation not cancelled: the TextArea `answer`, the Choices `label` and who
    completed it (`completed_by`: a user object's e-mail, or the user id)."""
    done = [a for a in annotations or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not done:
        return {}
    annotation, out = done[-1], {}
    for region in annotation.get("result") or []:
        value = region.get("value") if isinstance(region, dict) else None
        if not isinstance(value, dict):
            continue
        if region.get("from_name") == "answer" and isinstance(value.get("text"), list):
            out["answer"] = "\n".join(str(t) for t in value["text"])
        if region.get("from_name") == "label" and isinstance(value.get("choices"), list) and value["choices"]:
            out["label"] = value["choices"][0]
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if who not in (None, ""):
        out["reviewer"] = str(who) if not isinstance(who, int) else f"label-studio user {who}"
    return out
