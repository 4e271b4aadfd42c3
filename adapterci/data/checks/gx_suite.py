"""The tabular expectations, run by Great Expectations (ephemeral context, one pandas frame per data part):
required fields present and non-empty, length bounds, row count, label and answer value sets. Each
expectation feeds one named check (`schema`, `row_count`, `label_balance`). Data Docs go to the run dir."""

from __future__ import annotations

import errno
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from adapterci.data.checks.corpus import Corpus, Part
from adapterci.data.checks.result import Failure

SAFETY_LABELS = ["harmful", "benign"]


@dataclass
class GxOutcome:
    """Failures per check name, one line per expectation run, and where the Data Docs are."""

    failures: dict[str, list[Failure]] = field(default_factory=dict)
    expectations: list[dict[str, Any]] = field(default_factory=list)
    data_docs: Path | None = None


def run_expectations(corpus: Corpus, cfg, docs_dir: Path) -> GxOutcome:
    """Validate every part with Great Expectations and write the Data Docs site into `docs_dir`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    ctx.add_data_docs_site(site_name="adapterci", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    outcome = GxOutcome()
    for part in corpus.parts:
        _validate(ctx, part, corpus, cfg, outcome)
    with _logged_errors() as errors:  # GX logs a failed page (e.g. a full disk) with its traceback and goes on
        ctx.build_data_docs(site_names=["adapterci"])
    if errors:
        raise OSError(_errno_of(errors[0]), _cause_of(errors[0]), str(docs_dir))
    outcome.data_docs = docs_dir / "index.html"
    return outcome


@contextmanager
def _logged_errors() -> Iterator[list[str]]:
    """Collect (instead of printing) what Great Expectations logs at ERROR level."""
    import logging

    errors: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: errors.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("great_expectations")
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield errors
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _cause_of(message: str) -> str:
    """The reason in a GX error message (`OSError: "[Errno 28] No space left on device"` -> the text)."""
    found = re.search(r'\w+Error: "(?:\[Errno \d+\] )?([^"]*)"', message)
    return found.group(1) if found else message.splitlines()[0]


def _errno_of(message: str) -> int:
    found = re.search(r"\[Errno (\d+)\]", message)
    return int(found.group(1)) if found else errno.EIO


def _expectations(part: Part, cfg) -> list[tuple[str, Any]]:
    """(check name, expectation) for one part."""
    import great_expectations.expectations as gxe

    c = cfg.checks
    lo, hi = max(1, c.min_chars), c.max_chars
    out: list[tuple[str, Any]] = []
    columns = ["prompt"] + (["completion"] if part.kind != "safety" else ["label"])
    if any(ex.is_pair for ex in part.examples):
        columns.append("rejected")
    for col in columns:
        out.append(("schema", gxe.ExpectColumnValuesToNotBeNull(column=col)))
        if col != "label":
            out.append(("schema", gxe.ExpectColumnValueLengthsToBeBetween(column=col, min_value=lo, max_value=hi)))
    if part.kind == "train":
        out.append(("row_count", gxe.ExpectTableRowCountToBeBetween(min_value=c.min_rows, max_value=c.max_rows)))
    else:
        out.append(("row_count", gxe.ExpectTableRowCountToBeBetween(min_value=1)))
    if part.kind in ("train", "validation") and c.labels:
        out.append(("label_balance", gxe.ExpectColumnValuesToBeInSet(
            column="completion", value_set=c.labels, mostly=round(1 - c.max_unlabeled_share, 6))))
    if part.kind == "safety":
        out.append(("schema", gxe.ExpectColumnValuesToBeInSet(column="label", value_set=SAFETY_LABELS)))
    if part.kind == "task" and part.suite.choices:
        out.append(("schema", gxe.ExpectColumnValuesToBeInSet(column="completion", value_set=part.suite.choices)))
    return out


def _frame(part: Part):
    import pandas as pd

    exs = part.examples
    data = {"row": range(len(exs)), "prompt": [ex.prompt_text for ex in exs]}
    if part.kind == "safety":
        data["label"] = [ex.meta.get("label") if isinstance(ex.meta.get("label"), str) else None for ex in exs]
    else:
        data["completion"] = [ex.completion for ex in exs]
    if any(ex.is_pair for ex in exs):
        data["rejected"] = [ex.rejected for ex in exs]
    return pd.DataFrame(data)


def _validate(ctx, part: Part, corpus: Corpus, cfg, outcome: GxOutcome) -> None:
    """Two suites per part: per-row expectations with COMPLETE results (every failing row, for file and line),
    and whole-table ones (row count, shares) with SUMMARY results (no list of the rows a share allows)."""
    import great_expectations as gx

    name = part.name.replace(":", "-")
    batch = ctx.data_sources.add_pandas(name).add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
    frame = _frame(part)
    for scope, result_format in (("rows", {"result_format": "COMPLETE", "unexpected_index_column_names": ["row"]}),
                                 ("table", {"result_format": "SUMMARY"})):
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}-{scope}"))
        tags = {}
        for check, expectation in _expectations(part, cfg):
            if (scope == "table") == _whole_table(expectation):
                suite.add_expectation(expectation)
                tags[expectation.id] = check
        definition = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}-{scope}", data=batch, suite=suite))
        result = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
        _collect(result, tags, part, corpus, cfg, outcome)


def _whole_table(expectation) -> bool:
    import great_expectations.expectations as gxe

    return isinstance(expectation, gxe.ExpectTableRowCountToBeBetween) or (getattr(expectation, "mostly", 1) or 1) < 1


def _collect(result, tags: dict, part: Part, corpus: Corpus, cfg, outcome: GxOutcome) -> None:
    """Turn one validation result into failures of the named checks."""
    where = part.where(cfg.base_dir)
    for r in result.results:
        check = tags[r.expectation_config.id]
        kind = r.expectation_config.type
        outcome.expectations.append({"part": part.name, "expectation": kind, "check": check, "success": r.success})
        if r.success:
            continue
        bucket = outcome.failures.setdefault(check, [])
        if r.exception_info and r.exception_info.get("raised_exception"):
            bucket.append(Failure(where, 0, f"{kind} could not run: {r.exception_info.get('exception_message')}"))
        elif kind == "expect_table_row_count_to_be_between":
            bucket.append(Failure(where, 0, _row_count_message(part, r.result["observed_value"], cfg)))
        elif getattr(r.expectation_config, "kwargs", {}).get("mostly", 1) < 1:
            bucket.append(Failure(where, 0, _share_message(part, r, cfg)))
        else:
            for entry in r.result.get("unexpected_index_list") or []:
                ex = part.examples[int(entry["row"])]
                if corpus.is_new(ex.source):
                    bucket.append(Failure.at(ex.source, _row_message(kind, r.expectation_config.kwargs, entry)))


def _row_count_message(part: Part, observed: int, cfg) -> str:
    c = cfg.checks
    if part.kind != "train":
        return f"{part.name} has no usable rows"
    if observed < c.min_rows:
        return f"{observed} usable training rows, fewer than `checks.min_rows` ({c.min_rows})"
    return f"{observed} training rows, more than `checks.max_rows` ({c.max_rows})"


def _share_message(part: Part, r, cfg) -> str:
    pct = r.result.get("unexpected_percent") or 0.0
    return (f"{pct:.1f}% of {part.name} answers are not one of `checks.labels` {cfg.checks.labels} "
            f"(at most {cfg.checks.max_unlabeled_share:.0%} allowed by `checks.max_unlabeled_share`)")


def _row_message(kind: str, kwargs: dict, entry: dict) -> str:
    col = kwargs.get("column")
    value = entry.get(col)
    if kind == "expect_column_values_to_not_be_null":
        return f"`{col}` is missing"
    if kind == "expect_column_value_lengths_to_be_between":
        return (f"`{col}` is {len(value)} characters, outside `checks.min_chars`..`checks.max_chars` "
                f"({kwargs.get('min_value')}..{kwargs.get('max_value')})")
    if kind == "expect_column_values_to_be_in_set":
        return f"`{col}` is {value!r}, not one of {list(kwargs.get('value_set'))}"
    return f"{kind} failed for `{col}`"
