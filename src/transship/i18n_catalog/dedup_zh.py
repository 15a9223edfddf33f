"""Chinese messages of the dedup codec's summary (`transship save`, `inspect`, the web page)."""

MESSAGES: dict[str, str] = {
    "dedup.finishing.checking": "dedup：正在确认值得重建的层能逐位还原，随后写入内容库",
    "dedup.finishing.checked": "dedup：已校验 {count}/{total} 个层",
    "dedup.finishing.writing_store": "dedup：已校验 {checked} 个层，{kept} 个按原样保留；正在写入内容库",
    "dedup.summary.split": "dedup：{layers} 个层中有 {split} 个拆分为文件内容（压缩大小 {total_bytes} 中的 {split_bytes}{ways}），加载时逐位精确重建{reused}",
    "dedup.summary.ways": "；{ways}",
    "dedup.summary.reused": "（其中 {count} 个沿用之前保存时的校验）",
    "dedup.summary.raw": "dedup：{count} 个层按原样存储：{reasons}",
    "dedup.summary.reason": "{reason} {count} 个（{bytes}）",
    "dedup.summary.separator": "；",
    "dedup.summary.contents": "dedup：文件内容 {seen} 个（{seen_bytes}），去重后存储 {stored} 个（{stored_bytes}）{parents}；内容库 {store_bytes}，层配方 {recipe_bytes}",
    "dedup.summary.parents": "，{count} 个由父包提供",
    "dedup.summary.note": "dedup：{note}",
    "dedup.reason.zstd": "zstd 压缩的层",
    "dedup.reason.not_layer": "既非 gzip 也非 tar",
    "dedup.reason.bad_gzip": "不是有效的 gzip 流",
    "dedup.reason.no_encoder": "gzip 无法逐位重现",
    "dedup.reason.low_gain": "重建节省太少",
}
