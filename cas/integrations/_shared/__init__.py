"""What the framework plugins share: names as path segments, a folder space over the store, one store cache.

Used by the ZenML, MLflow and FlowyML integrations; never imported by the core."""
