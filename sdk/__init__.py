"""tagrec SDK: a typed client of the tagrec control plane.

    from sdk import Client

    client = Client()  # args > TAGREC_* env > ~/.tagrec/credentials; starts local mode if unset
    client.dataset_groups.create("shop")
    job = client.dataset_import_jobs.create_and_wait(
        "shop", dataset="interactions", source="interactions.csv"
    )

Imports neither torch, ray nor pyarrow.
"""

from sdk.client import Client, __version__
from sdk.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ResourceFailedError,
    ServiceUnavailableError,
    TagrecError,
    UnprocessableEntityError,
    WaitTimeoutError,
)
from sdk.types import (
    TERMINAL_STATUSES,
    Campaign,
    Dataset,
    DatasetCreate,
    DatasetGroup,
    DatasetGroupCreate,
    DatasetImportJob,
    DatasetImportJobCreate,
    DatasetKind,
    EvaluationConfig,
    Event,
    FieldType,
    ImportMode,
    ImportProgress,
    ImportSource,
    PutEventsResponse,
    RecipeInfo,
    RecommendResponse,
    Role,
    ScalingConfig,
    Schema,
    SchemaField,
    SessionEvent,
    Solution,
    SolutionVersion,
    Status,
    TagsResponse,
)

__all__ = [
    "TERMINAL_STATUSES",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Dataset",
    "DatasetCreate",
    "DatasetGroup",
    "DatasetGroupCreate",
    "DatasetImportJob",
    "DatasetImportJobCreate",
    "DatasetKind",
    "FieldType",
    "ImportMode",
    "ImportProgress",
    "ImportSource",
    "EvaluationConfig",
    "Campaign",
    "Event",
    "PutEventsResponse",
    "RecommendResponse",
    "TagsResponse",
    "SessionEvent",
    "RecipeInfo",
    "ScalingConfig",
    "Solution",
    "SolutionVersion",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResourceFailedError",
    "Role",
    "Schema",
    "SchemaField",
    "ServiceUnavailableError",
    "Status",
    "TagrecError",
    "UnprocessableEntityError",
    "WaitTimeoutError",
    "__version__",
]
