"""Pure values and codecs with no I/O: digests, names, tree manifests, records, refs, the format file, units.

Everything else in cas builds on these; nothing here imports another cas package except errors."""
