"""docs/design.md: its generated capacity blocks are exactly `camlog capacity --format markdown`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.admin import capacity as cap
from pipeline.admin.capacity_cli import DEFAULT_RESULTS, load_figures, refresh_blocks, render
from pipeline.errors import CliError

DOC = Path(__file__).resolve().parents[1] / "docs" / "design.md"
FIG = load_figures(DEFAULT_RESULTS)


def test_generated_blocks_match_the_committed_results():
    text = DOC.read_text()
    assert refresh_blocks(text, FIG) == text, (
        "docs/design.md is stale: run `camlog capacity --update docs/design.md`")


def test_reference_block_is_the_default_command_output():
    text = DOC.read_text()
    body = text.split("<!-- capacity:begin -->\n", 1)[1].split("<!-- capacity:end -->", 1)[0]
    assert body == render(cap.plan(FIG, cap.Fleet()), "markdown")


def test_every_phase_has_a_filled_block():
    text = DOC.read_text()
    names = re.findall(r"<!-- capacity:([\w-]+):begin", text)
    assert names == ["mvp", "pilot", "growth"]
    for name in names:
        body = text.split(f"<!-- capacity:{name}:begin", 1)[1].split("-->\n", 1)[1]
        assert body.split(f"<!-- capacity:{name}:end -->")[0].startswith("Plan for ")


def test_refresh_replaces_a_stale_block_and_refuses_bad_arguments():
    stale = "x\n<!-- capacity:p:begin --cameras 10 -->\nold\n<!-- capacity:p:end -->\ny\n"
    fresh = refresh_blocks(stale, FIG)
    assert "old" not in fresh and "Plan for 10 cameras" in fresh
    assert refresh_blocks(fresh, FIG) == fresh
    with pytest.raises(CliError):
        refresh_blocks(stale.replace("--cameras 10", "--cameras ten"), FIG)
    with pytest.raises(CliError):
        refresh_blocks(stale.replace("--cameras 10", "--frobnicate"), FIG)
