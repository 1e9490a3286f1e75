"""The API contract: request and resource models shared by the SDK and the control plane.

The server validates every request with these same classes, so an error raised here on the
client is the error the server would give. Nouns follow Amazon Personalize. Models of answers
(resources, runtime responses) ignore fields they do not know, so a server that adds a field
never breaks a deployed client; models of requests forbid unknown fields.

Modules: :mod:`.common` (names, statuses, errors, pages), :mod:`.datasets`, :mod:`.training`
(solutions, versions, recipes), :mod:`.campaigns`, :mod:`.runtime` (campaign requests and
answers per task, events), :mod:`.batch` (batch inference jobs).
"""

from __future__ import annotations

from .batch import (  # noqa: F401 - re-exported
    BATCH_OUTPUTS,
    BATCH_TASKS,
    DEFAULT_SEGMENT_SIZE,
    MAX_BATCH_USERS,
    MAX_NUM_RESULTS,
    BatchInferenceJob,
    BatchInferenceJobCreate,
    BatchInferenceOutput,
    BatchInferenceProgress,
)
from .campaigns import (  # noqa: F401 - re-exported
    Campaign,
    CampaignCreate,
    CampaignUpdate,
)
from .common import (  # noqa: F401 - re-exported
    FIELD_NAME_PATTERN,
    NAME_PATTERN,
    TERMINAL_STATUSES,
    ErrorBody,
    FieldName,
    Page,
    ResourceName,
    Status,
)
from .datasets import (  # noqa: F401 - re-exported
    NON_NULL_ROLES,
    Dataset,
    DatasetCreate,
    DatasetGroup,
    DatasetGroupCreate,
    DatasetImportJob,
    DatasetImportJobCreate,
    DatasetKind,
    FieldType,
    ImportMode,
    ImportProgress,
    ImportSource,
    Role,
    Schema,
    SchemaField,
    interactions_schema,
)
from .runtime import (  # noqa: F401 - re-exported
    VERB_REQUESTS,
    VERB_RESPONSES,
    ContextValue,
    Event,
    GenerateTagsRequest,
    ItemId,
    NextTagsRequest,
    PutEventsRequest,
    PutEventsResponse,
    RankRequest,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    ScoredTag,
    SessionEvent,
    TagId,
    TagsRequest,
    TagsResponse,
)
from .training import (  # noqa: F401 - re-exported
    EvaluationConfig,
    RecipeInfo,
    ScalingConfig,
    Solution,
    SolutionCreate,
    SolutionVersion,
    SolutionVersionCreate,
    TrainingProgress,
)

__all__ = [
    "NAME_PATTERN",
    "FIELD_NAME_PATTERN",
    "ResourceName",
    "FieldName",
    "Status",
    "FieldType",
    "Role",
    "DatasetKind",
    "ImportMode",
    "SchemaField",
    "Schema",
    "DatasetGroup",
    "DatasetGroupCreate",
    "Dataset",
    "DatasetCreate",
    "ImportSource",
    "ImportProgress",
    "DatasetImportJob",
    "DatasetImportJobCreate",
    "ErrorBody",
    "Page",
    "TERMINAL_STATUSES",
    "interactions_schema",
    "ScalingConfig",
    "EvaluationConfig",
    "SolutionCreate",
    "Solution",
    "SolutionVersionCreate",
    "TrainingProgress",
    "SolutionVersion",
    "RecipeInfo",
    "CampaignCreate",
    "CampaignUpdate",
    "Campaign",
    "RecommendRequest",
    "RankRequest",
    "RecommendedItem",
    "RecommendResponse",
    "TagsRequest",
    "GenerateTagsRequest",
    "SessionEvent",
    "NextTagsRequest",
    "ScoredTag",
    "TagsResponse",
    "VERB_REQUESTS",
    "VERB_RESPONSES",
    "Event",
    "PutEventsRequest",
    "PutEventsResponse",
    "BATCH_OUTPUTS",
    "BATCH_TASKS",
    "DEFAULT_SEGMENT_SIZE",
    "MAX_BATCH_USERS",
    "MAX_NUM_RESULTS",
    "BatchInferenceJobCreate",
    "BatchInferenceProgress",
    "BatchInferenceOutput",
    "BatchInferenceJob",
]
