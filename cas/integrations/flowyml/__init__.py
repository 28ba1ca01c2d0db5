"""cas as a FlowyML artifact store.

Put it in a stack::

    from flowyml.plugins.manager import PluginManager
    store = PluginManager().get_instance("cas", store="/data/.cas")   # found through the entry point
    stack = Stack("cas", executor=LocalExecutor(), artifact_store=store, metadata_store=...)

or import :class:`cas.integrations.flowyml.artifact_store.CasArtifactStore`
directly.  Importing this package does not import FlowyML; ``artifact_store``
does.  See docs/flowyml.md.
"""

PLUGIN = "cas"
