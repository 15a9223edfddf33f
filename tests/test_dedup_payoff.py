"""Which layers a dedup bundle rebuilds (transship.dedup.payoff)."""

from __future__ import annotations

from transship.dedup.payoff import EFFORT_MIN_GAIN, Item, LayerCost, choose_rebuilt

MB = 1_000_000


def layer(digest: str, size_mb: float, seconds: float, items: dict) -> LayerCost:
    """A layer of `size_mb` whose items (key -> stored MB) would go into the store."""
    return LayerCost(
        digest,
        int(size_mb * MB),
        seconds,
        own_bytes=1000,
        items=[Item(key, mb * MB) for key, mb in items.items()],
    )


def test_effort_max_rebuilds_every_layer():
    layers = [layer("a", 10, 5, {"x": 10}), layer("b", 10, 5, {"y": 10})]
    assert choose_rebuilt(layers, EFFORT_MIN_GAIN["max"]) == {"a", "b"}


def test_a_layer_sharing_nothing_stays_as_it_is_and_one_repeating_files_is_rebuilt():
    unique = layer("unique", 100, 2.5, {"u1": 60, "u2": 38})  # saves 2 MB: 0.8 MB/s
    base = layer("base", 50, 1.25, {"s": 40, "b": 8})
    repeat = layer("repeat", 50, 1.25, {"s": 40, "r": 2})
    # Each of `base` and `repeat` saves what it shares with the other: 40 MB / 1.25 s.
    assert choose_rebuilt([unique, base, repeat], 15 * MB) == {"base", "repeat"}


def test_dropping_a_layer_leaves_its_shared_items_to_the_other():
    # a and b share "s"; a's other bytes make it a poor deal, so it goes first; then
    # b alone pays for "s" and is not worth it any more.
    a = layer("a", 40, 2, {"s": 10, "a": 39})
    b = layer("b", 12, 1, {"s": 10, "b": 1})
    assert choose_rebuilt([a, b], 5 * MB) == set()
    # With a third layer still holding "s", b keeps its gain.
    c = layer("c", 12, 0.1, {"s": 10, "c": 1})
    assert choose_rebuilt([a, b, c], 5 * MB) == {"b", "c"}


def test_two_compressions_of_one_tar_are_judged_together():
    # Each copy looks free while the other is kept (it saves its whole size, over
    # 17 MB/s), but the pair stores the tar once (110 MB) instead of 281 MB: 171 MB over
    # 14.5 s is 11.8 MB/s.
    go = layer("go", 141, 6.5, {"jre": 100, "bin": 10})
    gz = layer("gz", 140, 8, {"jre": 100, "bin": 10})
    assert choose_rebuilt([go, gz], 15 * MB) == set()
    assert choose_rebuilt([go, gz], 5 * MB) == {"go", "gz"}


def test_two_versions_of_a_base_layer_are_judged_together():
    # v2 changed a tenth of v1's bytes: each version alone saves about its whole size,
    # together they save 136 - 55 MB over 9 s.
    v1 = layer("v1", 68, 4.5, {"same": 50, "old": 5})
    v2 = layer("v2", 68, 4.5, {"same": 50, "new": 5})
    assert choose_rebuilt([v1, v2], 12 * MB) == set()
    assert choose_rebuilt([v1, v2], 8 * MB) == {"v1", "v2"}
    # Layers sharing a little are weighed one by one: kept while each saves enough.
    small = layer("small", 68, 4.5, {"same": 5, "own": 50})
    other = layer("other", 68, 4.5, {"same": 5, "mine": 50})
    assert choose_rebuilt([small, other], 3 * MB) == {"small", "other"}


def test_layers_free_to_rebuild_are_kept_and_what_they_hold_costs_the_others_nothing():
    tar = layer("tar", 30, 0, {"s": 25})  # an uncompressed tar layer: no gzip to redo
    gz = layer("gz", 28, 1, {"s": 25, "g": 2})  # without `tar` it would save 1 MB/s
    assert choose_rebuilt([tar, gz], 15 * MB) == {"tar", "gz"}
    assert choose_rebuilt([gz], 15 * MB) == set()
