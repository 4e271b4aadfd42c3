"""The composite action (action.yml), executed with act in host mode from a caller workflow."""

from __future__ import annotations

import pytest

from test_workflows import act, make_project

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("act")]

CALLER = """\
on: push
permissions: {}
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
        with: {persist-credentials: false}
      - id: a
        uses: ./
        with:
          command: check
          run-dir: .adapterci/action-run
  unknown:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
        with: {persist-credentials: false}
      - id: a
        uses: ./
        with:
          command: deploy
  injection:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
        with: {persist-credentials: false}
      - id: a
        uses: ./
        with:
          command: gate
          extra-args: "--results $(touch${IFS}PWNED) ; touch PWNED2"
      - if: ${{ always() }}
        run: test ! -e PWNED && test ! -e PWNED2
  bad-registry:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
        with: {persist-credentials: false}
      - id: a
        uses: ./
        with:
          command: check
          registry: ftp://nowhere
"""


@pytest.fixture(scope="module")
def caller_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("action")
    project = make_project(root / "project")
    (project / ".github" / "workflows" / "caller.yml").write_text(CALLER)
    home = root / "home"
    home.mkdir()
    return act(project, "push", {"ref": "refs/heads/main"}, "caller.yml", home)


def test_action_check_writes_outputs_and_the_step_summary(caller_run) -> None:
    assert caller_run.jobs["check"] == "success", caller_run.output_lines("check")[-3000:]
    assert caller_run.outputs[("check", "exit-code")] == "0"
    assert caller_run.outputs[("check", "report-path")].endswith(".adapterci/action-run/report.md")
    assert caller_run.outputs[("check", "verdict")] == ""  # the gate did not run
    assert any("<!-- adapterci-report -->" in s and "### Data check" in s for s in caller_run.summaries)


def test_action_rejects_an_unknown_command_with_exit_2(caller_run) -> None:
    assert caller_run.jobs["unknown"] == "failure"
    assert "unknown command 'deploy'" in caller_run.output_lines("unknown")
    assert "exit status 2" in caller_run.output_lines("unknown")


def test_action_extra_args_are_not_evaluated_by_a_shell(caller_run) -> None:
    assert caller_run.jobs["injection"] == "failure"  # the gate command got odd arguments and refused them
    lines = caller_run.output_lines("injection")
    assert "Success - Main test ! -e PWNED" in lines, lines[-3000:]


def test_action_registry_input_is_validated(caller_run) -> None:
    assert caller_run.jobs["bad-registry"] == "failure"
    assert "ADAPTERCI_REGISTRY='ftp://nowhere'" in caller_run.output_lines("bad-registry")
    assert caller_run.outputs[("bad-registry", "exit-code")] == "2"

