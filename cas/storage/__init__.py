"""The store's objects on a backend: blobs by digest, records and refs, the journal, gc marks, downloads.

These modules alone know the on-disk layout; they know nothing of the SQLite index."""
