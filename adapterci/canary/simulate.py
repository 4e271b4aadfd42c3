"""A traffic simulator: request logs of stable and canary with known effects, for tests and bench/canary.py.

Stable's traffic (`Traffic`) has lognormal latency, two error types, sparse user feedback, task success and rare
safety flags; the canary gets the same traffic with one `EFFECTS` entry applied. `conversations` adds what
`adapterci harvest` reads: a request id, the prompt (a review to classify: the example's task), the model's
response (the wrong label, or a malformed answer, where the request failed) and the review's category."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from adapterci.canary.logs import Requests


@dataclass(frozen=True)
class Traffic:
    latency_median_ms: float = 400.0
    latency_sigma: float = 0.5  # of log-latency
    errors: dict[str, float] = field(default_factory=lambda: {"timeout": 0.006, "rate_limit": 0.004})
    feedback_share: float = 0.3  # requests that get feedback
    positive_rate: float = 0.80  # of the feedback
    success_rate: float = 0.90
    safety_rate: float = 0.005


EFFECTS = {
    "equal": lambda t: t,
    "feedback -5 points": lambda t: replace(t, positive_rate=t.positive_rate - 0.05),
    "new error type at 2%": lambda t: replace(t, errors={**t.errors, "format_error": 0.02}),
    "latency +30%": lambda t: replace(t, latency_median_ms=t.latency_median_ms * 1.3),
    "safety flags x3": lambda t: replace(t, safety_rate=t.safety_rate * 3),
}


def draw(rng: np.random.Generator, n: int, traffic: Traffic) -> dict[str, np.ndarray]:
    """`n` requests' KPI columns under `traffic`."""
    latency = traffic.latency_median_ms * np.exp(traffic.latency_sigma * rng.standard_normal(n))
    kinds = list(traffic.errors)
    probs = np.array([traffic.errors[k] for k in kinds])
    pick = rng.choice(len(kinds) + 1, size=n, p=np.append(probs, 1 - probs.sum()))
    errors = np.array([*kinds, ""], dtype=object)[pick]
    feedback = np.where(rng.random(n) < traffic.feedback_share, (rng.random(n) < traffic.positive_rate).astype(float), np.nan)
    return {"latency": latency, "errors": errors, "feedback": feedback,
            "success": (rng.random(n) < traffic.success_rate).astype(float),
            "safety": (rng.random(n) < traffic.safety_rate).astype(float)}


def simulate(rng: np.random.Generator, hours: int, per_hour: int, share: float, effect: str = "equal",
             start: float = 1_767_225_600.0, traffic: Traffic = Traffic()) -> Requests:
    """`hours` hours of `per_hour` requests each, a `share` of them served by the canary (version `canary`, the
    rest `stable`); the canary's traffic has `effect` (a key of EFFECTS) applied. Sorted by time."""
    n = hours * per_hour
    timestamp = start + np.repeat(np.arange(hours), per_hour) * 3600.0 + rng.random(n) * 3600.0
    is_canary = rng.random(n) < share
    stable, canary = draw(rng, n, traffic), draw(rng, n, EFFECTS[effect](traffic))
    columns = {k: np.where(is_canary, canary[k], stable[k]) for k in stable}
    version = np.where(is_canary, "canary", "stable").astype(object)
    return Requests(timestamp=timestamp, version=version, **columns)


INSTRUCTION = "Classify the sentiment of this review as positive or negative."
REVIEWS = {  # category -> (review, its label); none of them is in the example's data or eval sets
    "electronics": [
        ("The smartwatch tracks my runs accurately and the strap feels soft all day.", "positive"),
        ("This router keeps every room of the flat online without a single dropout.", "positive"),
        ("The e-reader screen is crisp in sunlight and a charge lasts for weeks.", "positive"),
        ("My new printer jams on every second page and the ink smears badly.", "negative"),
        ("The bluetooth speaker crackles at half volume and disconnects from my phone.", "negative"),
        ("This graphics card runs so hot that the fans howl during simple browsing.", "negative"),
    ],
    "home": [
        ("The cast iron skillet heats evenly and cleans up with just a quick rinse.", "positive"),
        ("Our robot mower handles the slope in the garden without any fuss at all.", "positive"),
        ("These linen sheets got softer with every wash and still look brand new.", "positive"),
        ("The dishwasher leaves a gritty film on every glass no matter which program.", "negative"),
        ("This office chair squeaks constantly and the armrest fell off in March.", "negative"),
        ("The shower head lost half its pressure after a month of hard water.", "negative"),
    ],
    "travel": [
        ("The mountain lodge served hearty breakfasts and the hosts knew every trail nearby.", "positive"),
        ("Our night train cabin was spotless and we woke up rested in Vienna.", "positive"),
        ("The guided kayak trip through the fjord was calm, safe and unforgettable.", "positive"),
        ("The airline lost both suitcases and nobody answered the claims hotline for days.", "negative"),
        ("Our beach bungalow smelled of mould and the air conditioning rattled all night.", "negative"),
        ("The city bus tour skipped half the stops and the audio guide never worked.", "negative"),
    ],
    "food": [
        ("The bakery's sourdough has a crackling crust and a tangy, open crumb.", "positive"),
        ("Their lentil soup is rich, warming and generously seasoned with cumin.", "positive"),
        ("The dumpling house wraps everything by hand and the broth is superb.", "positive"),
        ("The steak arrived grey and chewy even though we ordered it rare.", "negative"),
        ("This frozen lasagne tasted of cardboard and the cheese never melted.", "negative"),
        ("The smoothie bar charged double and blended our drinks with rotten fruit.", "negative"),
    ],
}


def conversations(rng: np.random.Generator, requests: Requests) -> dict[str, np.ndarray]:
    """Per request: `request_id`, `prompt`, `response` and `category`. Every prompt is a review of REVIEWS to classify;
    a request that failed (error, task failure, negative feedback, safety flag) got the opposite label, or for an
    error a malformed answer; the others got the right one."""
    n = len(requests)
    pool = [(review, label, topic) for topic, reviews in REVIEWS.items() for review, label in reviews]
    pick = rng.integers(len(pool), size=n)
    prompts = np.array([f"{INSTRUCTION}\n\n{review}" for review, _, _ in pool], dtype=object)[pick]
    truth = np.array([label for _, label, _ in pool], dtype=object)[pick]
    category = np.array([topic for _, _, topic in pool], dtype=object)[pick]
    failed = (requests.errors != "") | (requests.success == 0) | (requests.feedback == 0) | (requests.safety == 1)
    wrong = np.where(truth == "positive", "negative", "positive").astype(object)
    response = np.where(failed, wrong, truth).astype(object)
    response[requests.errors != ""] = "Sentiment: unclear"
    ids = np.array([f"req-{i:08d}" for i in range(n)], dtype=object)
    return {"request_id": ids, "prompt": prompts, "response": response, "category": category}


def write_logs(requests: Requests, path: Path, versions: dict[str, str], fields,
               texts: dict[str, np.ndarray] | None = None) -> Path:
    """Write requests as a log file (format by suffix: .jsonl, .csv, .parquet) with the field names of
    `fields` (canary.fields); `versions` maps the simulator's `canary` / `stable` to what the log records;
    `texts` (from `conversations`) adds request ids, prompts, responses and categories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(len(requests)):
        row = {fields.timestamp: float(requests.timestamp[i]),
               fields.version: versions.get(str(requests.version[i]), str(requests.version[i]))}
        for name, column in (texts or {}).items():
            if getattr(fields, name) is not None:
                row[getattr(fields, name)] = str(column[i])
        for name in ("latency", "errors", "feedback", "success", "safety"):
            key, value = getattr(fields, name), getattr(requests, name)[i]
            if key is not None:
                row[key] = None if isinstance(value, float) and np.isnan(value) else (
                    value if isinstance(value, str) else (bool(value) if name in ("success", "safety") else float(value)))
        rows.append(row)
    if path.suffix == ".csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
