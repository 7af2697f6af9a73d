"""The foundation every layer uses: registry, configuration, atomic files, layout, shards,
status records and media decoding. Imports nothing else from bah."""
