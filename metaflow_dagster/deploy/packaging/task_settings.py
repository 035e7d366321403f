"""The non-secret Metaflow settings a deployed job's tasks need, read at `create`
from the options and configuration in effect (Metaflow's own objects), by the
environment variable names Metaflow reads them from: what `argo-workflows create`
writes into its pod specs. Credentials (AWS keys, METAFLOW_SERVICE_AUTH_KEY,
service headers) are never among them; the worker's environment provides those.

Paths of the creating machine stay out, with one exception: the root of a *local*
datastore, which is where the runs must land for the user's Client to find them
(METAFLOW_DATASTORE_SYSROOT_LOCAL; a worker elsewhere overrides it).
"""

import os
from typing import Dict

from ...compiler.errors import CreateError
from ...naming import (
    DATASTORE_ENV,
    ENVIRONMENT_ENV,
    LOCAL_DATASTORE_DIR,
    METADATA_ENV,
    S3_ENDPOINT_ENV,
    SERVICE_URL_ENV,
    sysroot_env,
)


def read_task_settings(obj) -> Dict[str, str]:
    """The settings, from Metaflow's objects of this `create` (see the module's doc)."""
    from metaflow import metaflow_config as config

    datastore = obj.flow_datastore
    settings = {
        DATASTORE_ENV: datastore.TYPE,
        METADATA_ENV: obj.metadata.TYPE,
        ENVIRONMENT_ENV: obj.environment.TYPE,
    }
    root = datastore.datastore_root
    if datastore.TYPE == "local":
        if os.path.basename(root.rstrip("/")) != LOCAL_DATASTORE_DIR:
            raise CreateError(
                "A local datastore root that is not a `%s` folder (%s) is not supported: "
                "tasks find a local datastore through METAFLOW_DATASTORE_SYSROOT_LOCAL, the "
                "folder holding `%s`. Use that instead of --datastore-root."
                % (LOCAL_DATASTORE_DIR, root, LOCAL_DATASTORE_DIR))
        root = os.path.dirname(root.rstrip("/"))
    settings[sysroot_env(datastore.TYPE)] = root
    if datastore.TYPE == "s3" and config.S3_ENDPOINT_URL:
        settings[S3_ENDPOINT_ENV] = config.S3_ENDPOINT_URL
    if datastore.TYPE == "azure" and config.AZURE_STORAGE_BLOB_SERVICE_ENDPOINT:
        settings["METAFLOW_AZURE_STORAGE_BLOB_SERVICE_ENDPOINT"] = \
            config.AZURE_STORAGE_BLOB_SERVICE_ENDPOINT
    if obj.metadata.TYPE == "service":
        settings[SERVICE_URL_ENV] = config.SERVICE_URL
    return settings
