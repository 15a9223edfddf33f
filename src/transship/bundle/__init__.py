"""The transship bundle format: images packed into files for sites no network reaches.

A bundle is a folder holding

- `NAME.meta.json` — what the bundle holds (meta.py): id, creation time, tool version,
  options; each image with its source, target name and exact manifest bytes (an index with
  its children); each blob with digest, size, media type, encoding and where its bytes lie
  (data file, tar member, offset, length); each data file with size and sha256; the parent
  bundles an incremental bundle depends on, with the blobs it left to each. Written last
  and atomically: a bundle without it is not complete.
- data files `NAME.000.tar`, `NAME.001.tar`, ... — plain tar archives (`tar tvf` lists
  them) whose members use OCI layout paths, `blobs/sha256/<hex>`, each blob stored once
  and byte-identical (writer.py). One per parallel writer; with a volume size, more files,
  each below it, a blob larger than a volume split into `<hex>.partNNN` members.
- or, in single-file mode, `NAME.tar` — the same members plus `oci-layout`, `index.json`
  and `manifest.json`, so that the file is also an OCI archive and a docker-archive that
  `docker load`, `podman load`, `ctr import` and skopeo read (layout.py).

Reading (reader.py) verifies every data file (presence, size, sha256, tar structure)
before anything is read, and every blob's digest as it streams. Incremental chains are in
chain.py; blob encodings (how a blob's bytes are stored: `raw`, or a codec plugged in via
codecs.py) are named per blob in the meta.
"""
