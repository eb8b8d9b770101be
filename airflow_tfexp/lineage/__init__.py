"""OpenLineage for experiment tasks: what each step read and wrote, named by the OpenLineage
naming spec, with the experiment's config hash, its metrics and its decisions as facets.

`naming` is light (no OpenLineage import); `facets` and `step` import the OpenLineage client
and are imported only when the OpenLineage provider asks a task for its lineage.
"""
