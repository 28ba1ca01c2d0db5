"""Where bytes live: the Backend contract with its declared capabilities, and its implementations.

Local disk, any fsspec URL, and server-enforced create-only writes for S3, GCS and Azure, with retries."""
