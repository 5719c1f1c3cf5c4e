"""Env coercion: each ``CAMLOG_*`` value is read as its field's declared type (Hypothesis)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import ConfigError, Settings, coerce, env_setting, load_settings

HINTS = typing.get_type_hints(Settings)
SIMPLE = [n for n in HINTS if n not in ("keys", "replication")]
# text that survives the environment: no NUL, no surrounding blanks, not empty
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00,"),
                min_size=1, max_size=30).map(str.strip).filter(bool)


def _values(kind: typing.Any) -> st.SearchStrategy:
    if kind is int:
        return st.integers(-(10**12), 10**12)
    if kind is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind is bool:
        return st.booleans()
    if kind is str:
        return _text
    if kind is Path:
        return _text.filter(lambda t: "/" not in t and t not in (".", "..")).map(Path)
    if typing.get_origin(kind) is tuple:
        return st.lists(_text, max_size=4).map(tuple)
    raise AssertionError(f"no strategy for {kind}")


def _render(value: typing.Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def test_every_field_type_has_a_parser():
    for name in SIMPLE:
        default = env_setting(name, {})
        assert coerce(name, _render(default)) == default, name


@given(st.data())
def test_values_round_trip_through_the_environment(data):
    name = data.draw(st.sampled_from(SIMPLE))
    value = data.draw(_values(HINTS[name]))
    assert coerce(name, _render(value)) == value
    assert type(coerce(name, _render(value))) is type(value)


@given(st.sampled_from([n for n in SIMPLE if HINTS[n] in (int, float)]),
       st.text(min_size=1, max_size=12).filter(lambda t: _not_number(t)))
def test_bad_numbers_are_config_errors_naming_the_variable(name, raw):
    with pytest.raises(ConfigError, match=f"CAMLOG_{name.upper()}"):
        coerce(name, raw)


def _not_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


def test_load_settings_reports_a_bad_value_and_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="CAMLOG_WORKER_MAX_FETCH_BYTES"):
        load_settings({"CAMLOG_STATE_DIR": str(tmp_path), "CAMLOG_WORKER_MAX_FETCH_BYTES": "4M"})
    s = load_settings({"CAMLOG_STATE_DIR": str(tmp_path / "new"), "CAMLOG_INGEST_RATE": "50"})
    assert s.ingest_rate == 50.0 and not (tmp_path / "new").exists()
    with pytest.raises(ConfigError, match="CAMLOG_SECRET"):
        s.require_keys()

