"""engine/session.py: the wiring shared by the CLI and the web UI (no registries needed)."""

from __future__ import annotations

import pytest

from transship.config import parse_config
from transship.engine import events as ev
from transship.engine.copy import CopyOptions
from transship.engine.session import (
    find_bundle_meta,
    load_jobs,
    plan_list,
    plan_save,
    run_copy,
)
from transship.errors import ConfigError, NotFoundError
from transship.reference import parse_image_list
from transship.transports.base import ImageLocation

CONFIG = parse_config(
    """
registries:
  company: {url: "registry.company.example/team"}
  site: {url: "10.0.0.5:5000", repository: site/apps}
"""
)


class LocationsOnly:
    """A bundle-like source that only lists its images."""

    def __init__(self, *locations: ImageLocation):
        self._locations = list(locations)

    def locations(self) -> list[ImageLocation]:
        return self._locations


def test_plan_list_applies_source_prefix_and_target_rewrite():
    lines = parse_image_list("app:1.0\nteam/db:2 -> data/db:2\nbad ref!\n")
    plan = plan_list(CONFIG, lines, source="company", target="site")
    jobs = [
        (p.source_registry, p.job.source_repository, p.job.target_repository) for p in plan.planned
    ]
    assert jobs == [
        ("registry.company.example", "team/app", "site/apps/app"),
        ("registry.company.example", "team/db", "data/db"),
    ]
    assert [i.line_number for i in plan.invalid] == [3]
    assert plan.target.host == "10.0.0.5:5000"


def test_plan_save_keeps_repositories_for_the_load_side_to_rewrite():
    plan = plan_save(CONFIG, parse_image_list("app:1.0\n"), source="company")
    assert [(p.job.target_repository, p.job.target_tag) for p in plan.planned] == [
        ("team/app", "1.0")
    ]
    assert plan.planned[0].job.source_label == "registry.company.example/team/app:1.0"


def test_run_copy_with_nothing_valid_still_reports_one_run():
    events: list[ev.Event] = []
    summary = run_copy(CONFIG, [], CONFIG.registry("site"), CopyOptions(), events.append)
    assert summary.ok == 0 and not summary.images
    assert [type(e).__name__ for e in events] == ["RunStarted", "RunDone"]


def test_load_jobs_rewrite_and_pick_images():
    source = LocationsOnly(
        ImageLocation("team/app", "1.0"),
        ImageLocation("team/db", "2"),
        ImageLocation("team/tool", None, "sha256:" + "a" * 64),
    )
    every = load_jobs(source, "site/apps")
    assert [(j.target_repository, j.target_tag, j.source_reference) for j in every] == [
        ("site/apps/app", "1.0", "1.0"),
        ("site/apps/db", "2", "2"),
        ("site/apps/tool", None, "sha256:" + "a" * 64),
    ]
    assert [j.label for j in load_jobs(source, None, ["team/db:2"])] == ["team/db:2"]
    with pytest.raises(NotFoundError, match="team/other:1"):
        load_jobs(source, None, ["team/db:2", "team/other:1"])


def test_find_bundle_meta_accepts_the_file_or_its_only_folder(tmp_path):
    with pytest.raises(ConfigError, match="no such bundle"):
        find_bundle_meta(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no bundle meta file"):
        find_bundle_meta(tmp_path)
    meta = tmp_path / "week1.meta.json"
    meta.write_text("{}")
    assert find_bundle_meta(tmp_path) == meta
    assert find_bundle_meta(meta) == meta
    (tmp_path / "week2.meta.json").write_text("{}")
    with pytest.raises(ConfigError, match="several bundles"):
        find_bundle_meta(tmp_path)
