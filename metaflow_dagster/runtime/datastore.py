"""The Metaflow datastore the tasks of a plan write to, opened once per process."""

from functools import lru_cache

from ..plan import FlowPlan


@lru_cache(maxsize=None)
def flow_datastore(flow_name: str, ds_type: str, ds_root: str):
    from metaflow.datastore import FlowDataStore
    from metaflow.plugins import DATASTORES

    storage = next(d for d in DATASTORES if d.TYPE == ds_type)
    return FlowDataStore(flow_name, None, storage_impl=storage, ds_root=ds_root or None)


def plan_datastore(plan: FlowPlan):
    return flow_datastore(plan.flow_name, plan.datastore, plan.datastore_root)
