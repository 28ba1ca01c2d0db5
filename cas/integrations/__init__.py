"""Framework integrations: ZenML (artifact-store flavor) and MLflow (artifact repository).

Nothing heavy is imported here: ``cas.integrations.zenml`` needs ``zenml`` and
``cas.integrations.mlflow`` needs ``mlflow`` (extras ``cas-store[zenml]`` and
``cas-store[mlflow]``); the core never imports either.  The shared parts -
framework directories kept as cas folders (:mod:`._folders`) and the path
space over them (:mod:`._space`) - need neither.
"""
