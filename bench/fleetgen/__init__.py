"""Generator of a benchmark fleet of Java-style images built from real files on this machine.

Modules: `sources` finds the files (OS files, a JDK, jars), `zipcopy` writes jars from
other jars' compressed entries, `plan` decides the fleet (seeded), `layers` writes
tar layers through a compressor, `layout` writes configs, manifests and the OCI layout,
`build` runs it all with a cache.
"""

GENERATOR_VERSION = 1
