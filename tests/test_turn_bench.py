"""A sample of the turn-taking benchmark in the suite: one case of each family, each a Twilio call
through the simulator against ``voxline serve`` on the embedded models (``voxline bench turns``
runs the whole labelled set)."""

from __future__ import annotations

import pytest

from voxline.benchmarks.turns import run_benchmark

pytestmark = pytest.mark.e2e


def test_one_case_of_each_family_as_a_caller_hears_it(tmp_path):
    result = run_benchmark(1, "all", {}, tmp_path / "server.log", progress=lambda _line: None)
    rows = {r["family"]: r for r in result["results"]}
    assert set(rows) == {"pauses", "complete", "noise", "barge-in", "echo", "backchannel", "false-interruption"}
    assert result["greeting_s"] > 6.0  # every overlap case talks over the same long greeting

    pauses, complete = rows["pauses"], rows["complete"]
    assert pauses["cut_off"] is False and pauses["answers"] == 1, pauses  # one answer, after the last word
    assert complete["cut_off"] is False and complete["latency_ms"] is not None and complete["latency_ms"] < 2500
    assert rows["noise"]["false_turn"] is False

    barge_in = rows["barge-in"]
    assert barge_in["cleared"] and barge_in["stopped"] and barge_in["clear_ms"] < 400, barge_in
    assert rows["echo"]["cleared"] is False and rows["echo"]["stopped"] is False  # the agent's own voice

    backchannel, cough = rows["backchannel"], rows["false-interruption"]
    assert backchannel["resumed"] and not backchannel["stopped"], backchannel
    assert cough["resumed"] and not cough["stopped"], cough
    assert cough["resume_ms"] is not None and cough["resume_ms"] <= 1500
    assert cough["repeated_ms"] is not None and cough["repeated_ms"] <= 200  # nothing heard twice
    summary = result["summary"]
    assert summary["echo"]["all"]["false_barge_in_pct"] == 0.0
