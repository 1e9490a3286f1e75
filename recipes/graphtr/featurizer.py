"""GraphTR's featurizer: the heterogeneous graph of the training snapshot (`graph.HeteroGraph`).

Follows Liu, Xie et al. (CIKM'20) §3.2 (the graph is built from the training data: behaviour edges
from the interactions, item–tag edges from the tags applied in training and the items' own tags,
creators from an items field, user groups from the users' categorical fields) and §5.4 (candidate
tags and their counts come from the training period only). Besides the graph it keeps each tag's
training applications, the fallback's order (the global popularity of §5.2), and each item's tag
counts (the `item-tag-frequency` baseline's featurizer: the candidates' weights of
``candidate_prior``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Featurizer
from recipes.common import tag_lists
from recipes.item_tag_frequency import ItemTagFrequencyConfig, ItemTagFrequencyFeaturizer
from sdk.types import DatasetKind, Role, Schema

from .configuration import GraphTrConfig
from .graph import NODE_TYPES, GraphColumns, GraphConfig, HeteroGraph

__all__ = ["GraphTrFeaturizer"]

_STATE = "graphtr.json"
_FREQUENCY = "item-tag-counts"
TAG = NODE_TYPES.index("tag")


class GraphTrFeaturizer(Featurizer):
    """The graph and the tags' training counts; `transform` returns the graph (the examples of the
    neighbour-similarity objective are its edges)."""

    def __init__(self, graph: HeteroGraph, tag_counts: np.ndarray, frequency: ItemTagFrequencyFeaturizer
                 ) -> None:
        self.graph = graph
        self.tag_counts = tag_counts  # (num tags,) applications in training, graph tag order
        self.frequency = frequency  # per item, how many times each tag was applied to it in training

    @classmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: GraphTrConfig, *,  # type: ignore[override]
            schemas: Mapping[DatasetKind, Schema]) -> GraphTrFeaturizer:
        inter = tables.get(DatasetKind.INTERACTIONS)
        if inter is None or schemas.get(DatasetKind.INTERACTIONS) is None:
            raise ValueError("recipe 'graphtr' needs an interactions dataset")
        missing = [r.value for r in (Role.USER_ID, Role.ITEM_ID, Role.TAGS)
                   if schemas[DatasetKind.INTERACTIONS].field_for(r) is None]
        if missing:
            raise ValueError(f"recipe 'graphtr' needs interactions fields with role {', '.join(missing)}")
        columns = GraphColumns.from_schemas(schemas)
        graph_config = GraphConfig.from_object(config)
        items = tables.get(DatasetKind.ITEMS)
        if not config.creator_field or items is None or config.creator_field not in items.column_names:
            graph_config = replace(graph_config, creator_field=None)
        graph = HeteroGraph.build(inter, items, tables.get(DatasetKind.USERS), columns=columns,
                                  config=graph_config)
        if graph.num_nodes_of("tag") == 0:
            raise ValueError("recipe 'graphtr' found no tag: the interactions' TAGS field (and the items' "
                             "TAGS) is empty in the training data")
        frequency = ItemTagFrequencyFeaturizer.fit(tables, ItemTagFrequencyConfig(), schemas=schemas)
        return cls(graph, _tag_counts(inter, columns.tags, graph), frequency)

    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> HeteroGraph:
        return self.graph

    def save(self, directory: Path) -> None:
        state, arrays = self.graph.state()
        (directory / _STATE).write_text(json.dumps(state))
        np.savez(directory / "graph.npz", tag_counts=self.tag_counts, **arrays)
        (directory / _FREQUENCY).mkdir(exist_ok=True)
        self.frequency.save(directory / _FREQUENCY)

    @classmethod
    def load(cls, directory: Path) -> GraphTrFeaturizer:
        state = json.loads((directory / _STATE).read_text())
        with np.load(directory / "graph.npz", allow_pickle=False) as z:
            arrays: dict[str, Any] = {k: z[k] for k in z.files}
        counts = arrays.pop("tag_counts")
        return cls(HeteroGraph.from_state(state, arrays), counts,
                   ItemTagFrequencyFeaturizer.load(directory / _FREQUENCY))

    # --- what the predictor asks ---------------------------------------------------------------
    def item_tags(self, item_id: str | None) -> np.ndarray:
        """The item's candidate tags known in training (tag indices within the tag type), or empty."""
        if item_id is None:
            return np.zeros(0, np.int64)
        node = self.graph.node("item", str(item_id))
        if node < 0:
            return np.zeros(0, np.int64)
        return self.graph.neighbours(node, "tag").astype(np.int64) - int(self.graph.offsets[TAG])

    def applied(self, item_id: str | None) -> dict[str, float]:
        """Tag → the times it was applied to the item in training (empty: none, or unknown)."""
        f = self.frequency
        i = f.items.index(item_id)
        lo, hi = int(f.indptr[i]), int(f.indptr[i + 1])
        return {f.tags.ids[t - 1]: float(c) for t, c in zip(f.pair_tags[lo:hi].tolist(),
                                                             f.pair_counts[lo:hi].tolist())}


def _tag_counts(interactions: pa.Table, tags_col: str | None, graph: HeteroGraph) -> np.ndarray:
    counts = np.zeros(graph.num_nodes_of("tag"), np.int64)
    if not tags_col or tags_col not in interactions.column_names:
        return counts
    flat = pc.list_flatten(tag_lists(interactions.column(tags_col)))
    if len(flat) == 0:
        return counts
    vc = pc.value_counts(flat.cast(pa.string()))
    nodes = graph.nodes("tag", vc.field("values"))
    keep = nodes >= 0
    np.add.at(counts, nodes[keep] - int(graph.offsets[TAG]), vc.field("counts").to_numpy()[keep])
    return counts
