"""Framework integrations: ZenML (artifact-store flavor), MLflow (artifact repository), FlowyML.

Nothing heavy is imported here: ``cas.integrations.zenml`` needs ``zenml`` and
``cas.integrations.mlflow`` needs ``mlflow`` (extras ``cas-store[zenml]`` and
``cas-store[mlflow]``); the core never imports either.  The shared parts
(:mod:`._shared`: framework directories kept as cas folders, the path space
over them, one store cache) need neither.
"""
