"""cas as an MLflow artifact repository for ``cas://`` URIs.

Installed with ``cas-store[mlflow]``, the ``mlflow.artifact_repository``
entry point registers :class:`~cas.integrations.mlflow.repository.CasArtifactRepository`
for the ``cas`` scheme.  Importing this package does not import MLflow.
See docs/mlflow.md.
"""
