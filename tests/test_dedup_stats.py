"""The dedup summary: what a save did with the layers, in the reader's language."""

from __future__ import annotations

from transship.bundle.dedup_stats import REASON_LOW_GAIN, DedupStats


def _stats() -> DedupStats:
    stats = DedupStats(contents_seen=9, contents_stored=5, contents_in_parents=2)
    stats.add_split("go level 6", 100, 300, 10)
    stats.add_raw_layer(REASON_LOW_GAIN, 50)
    stats.add_raw_layer("a reason of a later version", 7)
    stats.checks_reused = 1
    stats.notes.append("note as written")
    return stats


def test_summary_in_english_names_every_way_and_reason():
    lines = _stats().summary_lines(language="en")
    assert lines[0].startswith("dedup: 1 of 3 layers split into file contents (100 of 157")
    assert "1 go level 6" in lines[0] and "(1 checked by an earlier save)" in lines[0]
    assert lines[1] == (
        "dedup: 2 layers stored as they are: 1 a reason of a later version (7), "
        f"1 {REASON_LOW_GAIN} (50)"
    )
    assert lines[2].startswith("dedup: 9 file contents") and "2 left to parent bundles" in lines[2]
    assert lines[3] == "dedup: note as written"


def test_summary_in_chinese_translates_the_known_reasons_only():
    lines = _stats().summary_lines(language="zh")
    assert len(lines) == 4 and all(line.startswith("dedup：") for line in lines)
    assert "3 个层中有 1 个拆分为文件内容" in lines[0]
    assert "重建节省太少 1 个（50）" in lines[1]
    assert "a reason of a later version 1 个（7）" in lines[1]  # unknown: as the meta says
    assert REASON_LOW_GAIN not in lines[1]


def test_summary_follows_the_environment_by_default(monkeypatch):
    monkeypatch.setenv("TRANSSHIP_LANG", "zh")
    assert _stats().summary_lines()[0].startswith("dedup：")
    monkeypatch.setenv("TRANSSHIP_LANG", "en")
    assert _stats().summary_lines()[0].startswith("dedup: ")


def test_finishing_events_say_what_the_save_does_in_each_language():
    from transship.engine.events import Finishing

    event = Finishing.of("dedup.finishing.checked", count=3, total=7)
    assert event.what == "dedup: 3 of 7 layers checked" == event.text("en")
    assert event.text("zh") == "dedup：已校验 3/7 个层"
    assert event.to_json()["fields"] == {"count": 3, "total": 7}
    assert Finishing("as said").text("zh") == "as said"  # no key: the words as they are
