"""File-level deduplication of image layers (the core of the bundle's dedup codec).

A layer's uncompressed tar is split into its file contents and everything else; each
distinct content is stored once per bundle, across all layers of all images, in a zstd
content store ordered so that similar files sit together; the rest of each layer (its
"skeleton") goes into a small checksummed recipe from which the exact tar is rebuilt.

Modules, one job each:

- `tarsplit`: streaming split of a tar byte stream into skeleton + contents, and the
  inverse; byte-exact for any input, tar or not.
- `similarity`: the order contents are stored in.
- `content_store`: collects unique contents (spilled to disk), writes the compressed
  store with its index, reads it back (decompressing each frame once).
- `layer_recipe`: a layer's skeleton, content list and gzip-rebuild slot, serialized
  with checksums; corruption is reported with the layer's digest.
- `layer_codec`: one layer through split and rebuild.
- `incremental`: what parent bundles carry, and where contents come from at load time
  (this store, parent stores, layers already in the target).
- `session`: the save and load sides for a bundle writer and reader to drive.
"""
