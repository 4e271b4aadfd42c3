from __future__ import annotations

import click

from adapterci.cli.common import config_option, console, emit_json, json_option, run_dir_option
from adapterci.config import load_config
from adapterci.errors import GateFailed, GateInconclusive
from adapterci.gate.policy import decide
from adapterci.runs import run_dir_for


@click.command(name="gate")
@config_option
@click.option("--results", "results_path", default=None, type=click.Path(dir_okay=False),
              help="eval/results.json to judge (default: the run directory's).")
@json_option
@run_dir_option
def gate(config_path: str, results_path: str | None, as_json: bool, run_dir: str | None) -> None:
    """Apply the gate rules to eval results: PASS (exit 0), FAIL (1) or INCONCLUSIVE (3).

    \b
    adapterci gate
    adapterci gate --results path/to/eval/results.json --json
    """
    cfg = load_config(config_path)
    run = run_dir_for(cfg, run_dir)
    decision = decide(cfg, results_path or run.eval_json, run_dir=run)
    if as_json:
        emit_json(decision.to_json())
    else:
        out = console()
        for r in decision.rules:
            out.print(f"{r.outcome:<12} {r.rule}: {r.reason}", markup=False)
        out.print(f"gate: {decision.verdict} ({run.gate_json})", markup=False)
    if decision.verdict == "FAIL":
        raise GateFailed(f"gate: FAIL ({sum(r.outcome == 'FAIL' for r in decision.rules)} rule(s) failed)")
    if decision.verdict == "INCONCLUSIVE":
        raise GateInconclusive("gate: INCONCLUSIVE (a rule holds but is not significant, or too few items)")
