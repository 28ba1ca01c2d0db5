"""cas as a ZenML artifact store.

Register the flavor and use it in a stack::

    zenml artifact-store flavor register cas.integrations.zenml.flavor.CasArtifactStoreFlavor
    zenml artifact-store register cas_store --flavor=cas --path=cas://churn --store=/data/.cas
    zenml stack register cas_stack -o default -a cas_store --set

Importing this package does not import ZenML; ``flavor`` and
``artifact_store`` do (``filesystem``, ZenML's method set over ``cas://``
versions, does not).  See docs/zenml.md.
"""

FLAVOR = "cas"
