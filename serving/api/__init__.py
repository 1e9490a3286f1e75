"""The control plane's routes: one FastAPI router per resource, as the SDK's collections.

`platform` (healthz, whoami), `dataset_groups`, `datasets`, `uploads`, `dataset_import_jobs`,
`recipes`, `solutions`, `solution_versions`, `campaigns`, `events`, `batch_inference_jobs`; `common`
holds what they share (the `Context` on `app.state`, the tenant dependency, errors, pages, creates,
reapers) and `docs` the API's description. `serving.app.create_app` wires them, in `ROUTERS` order.
"""

from __future__ import annotations

from . import (
    batch_inference_jobs,
    campaigns,
    dataset_groups,
    dataset_import_jobs,
    datasets,
    events,
    platform,
    recipes,
    solution_versions,
    solutions,
    uploads,
)

__all__ = ["ROUTERS"]

# The order routes are matched and documented in.
ROUTERS = [m.router for m in (platform, dataset_groups, datasets, uploads, dataset_import_jobs, recipes,
                              solutions, solution_versions, campaigns, events, batch_inference_jobs)]
