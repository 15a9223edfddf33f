"""English messages of the dedup codec's summary (`transship save`, `inspect`, the web page)."""

MESSAGES: dict[str, str] = {
    # What a dedup save does once every layer is in (`transship save`, the web page).
    "dedup.finishing.checking": "dedup: checking that the layers worth rebuilding come back bit for bit, then writing the content store",
    "dedup.finishing.checked": "dedup: {count} of {total} layers checked",
    "dedup.finishing.writing_store": "dedup: {checked} layers checked, {kept} kept as they are; writing the content store",
    "dedup.summary.split": "dedup: {split} of {layers} layers split into file contents ({split_bytes} of {total_bytes} compressed{ways}), rebuilt bit-exact at load{reused}",
    "dedup.summary.ways": "; {ways}",
    "dedup.summary.reused": " ({count} checked by an earlier save)",
    "dedup.summary.raw": "dedup: {count} layers stored as they are: {reasons}",
    "dedup.summary.reason": "{count} {reason} ({bytes})",
    "dedup.summary.separator": ", ",
    "dedup.summary.contents": "dedup: {seen} file contents ({seen_bytes}), {stored} distinct stored ({stored_bytes}){parents}; content store {store_bytes}, layer recipes {recipe_bytes}",
    "dedup.summary.parents": ", {count} left to parent bundles",
    "dedup.summary.note": "dedup: {note}",
    # Why a layer is stored as it is (the reasons of bundle/dedup_stats.py).
    "dedup.reason.zstd": "zstd-compressed",
    "dedup.reason.not_layer": "neither gzip nor tar",
    "dedup.reason.bad_gzip": "not a valid gzip stream",
    "dedup.reason.no_encoder": "gzip not reproducible",
    "dedup.reason.low_gain": "rebuilding would save too little",
}
