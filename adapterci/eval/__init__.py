"""Evaluation of base, prompt baselines, champion and candidate on the configured suites: `stage.evaluate`
writes the results (`results.EvalResults`) that the gate judges."""
