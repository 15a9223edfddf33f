"""The codec a save writes with, built in one place for `transship save` and the web UI."""

from __future__ import annotations

import pytest

from transship.bundle.codec_choice import DEDUP_EFFORTS, codec_summary, make_codec
from transship.bundle.codecs import RawCodec
from transship.dedup.payoff import EFFORT_MIN_GAIN
from transship.errors import ConfigError


def test_raw_is_the_plain_codec():
    assert isinstance(make_codec("raw"), RawCodec)


@pytest.mark.parametrize("effort", DEDUP_EFFORTS)
def test_dedup_takes_the_effort_and_the_users_recipe_cache(effort, private_user_cache):
    codec = make_codec("dedup", effort)
    assert codec.encoding == "dedup"
    assert codec.min_gain == EFFORT_MIN_GAIN[effort]
    assert codec.recipe_cache == private_user_cache / "transship" / "gzip-recipes"


def test_each_call_gives_a_fresh_codec():
    assert make_codec("dedup", "max") is not make_codec("dedup", "max")


def test_the_efforts_named_here_are_the_ones_the_payoff_and_the_cli_know():
    from transship.cli.save import DEDUP_EFFORTS as CLI_EFFORTS  # kept apart: CLI start-up

    assert set(DEDUP_EFFORTS) == set(EFFORT_MIN_GAIN) == set(CLI_EFFORTS)


@pytest.mark.parametrize(
    ("name", "effort", "fragment"),
    [("zstd", "balanced", "unknown codec 'zstd'"), ("dedup", "ultra", "unknown dedup effort")],
)
def test_unknown_names_are_refused(name, effort, fragment):
    with pytest.raises(ConfigError, match=fragment):
        make_codec(name, effort)


def test_no_summary_for_other_bundle_formats(tmp_path):
    assert codec_summary(tmp_path / "img_full_202601010000_meta.yaml") == []
