"""Opening a flow's Metaflow datastore by its type and root, in any process that
has Metaflow: the op's (runtime/datastore.py, once per process), a child of the
task template (task/template.py). Importing this module imports Metaflow."""

from metaflow.datastore import FlowDataStore
from metaflow.plugins import DATASTORES


def open_flow_datastore(flow_name: str, ds_type: str, ds_root: str) -> FlowDataStore:
    storage = next(d for d in DATASTORES if d.TYPE == ds_type)
    return FlowDataStore(flow_name, None, storage_impl=storage, ds_root=ds_root or None)
