"""The flow's code, packaged by `dagster create` as `argo-workflows create` packages
it: Metaflow's own MetaflowPackage (the flow's directory, filtered by Metaflow's
`--package-suffixes`, plus Metaflow, its extensions and metaflow-dagster itself),
saved in the flow's datastore with `save_data`. The plan records where it is; each
op fetches it by sha and runs the flow's steps from it (runtime/launch/code_package.py).
"""

import os
from typing import Dict


def package_flow(obj, definitions_file: str) -> Dict[str, str]:
    """Package and save the flow's code; {"url", "sha", "datastore", "metadata"}.

    The definitions file being written is left out of the package: it is not the
    flow's code, and a package holding the previous version of it would change
    with every `create`, and the file with it."""
    from metaflow.metaflow_config import FEAT_ALWAYS_UPLOAD_CODE_PACKAGE
    from metaflow.package import MetaflowPackage

    output = os.path.basename(definitions_file)
    package = MetaflowPackage(
        obj.flow,
        obj.environment,
        obj.echo,
        suffixes=obj.package_suffixes,
        user_code_filter=lambda name: name != output,
        flow_datastore=obj.flow_datastore if FEAT_ALWAYS_UPLOAD_CODE_PACKAGE else None,
    )
    # As argo_workflows_cli.py does (this blocks until the package is made).
    if FEAT_ALWAYS_UPLOAD_CODE_PACKAGE:
        url, sha = package.package_url(), package.package_sha()
    else:
        url, sha = obj.flow_datastore.save_data([package.blob], len_hint=1)[0]
    return {"url": url, "sha": sha, "datastore": obj.flow_datastore.TYPE,
            "metadata": package.package_metadata}
