"""HRNN-meta recipe: the conformance checks of DESIGN.md §3, plus cold start and a quality check.

All data come from `sdk.synthetic.generate` (seeded, with planted successor structure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from pydantic import ValidationError

from recipes import get_recipe
from recipes.base import ARTIFACT_FILES, Query, save_artifact
from recipes.hrnn_meta import (
    RECIPE,
    HrnnMetaConfig,
    HrnnMetaFeaturizer,
    HrnnMetaHooks,
    HrnnMetaModel,
    HrnnMetaPredictor,
)
from recipes.hrnn_meta.featurizer import OOV, time_bucket
from recipes.hrnn_meta.training import LazyAdam, make_windows
from sdk.synthetic import SyntheticData, generate
from sdk.types import DatasetKind, FieldType, Role, Schema, SchemaField
from tests.unit.conformance import (
    RecipeConformance,
    one_torch_thread,  # noqa: F401  (autouse: one torch thread)
    overfit,
)
from training_jobs.loop import epochs

SMALL = HrnnMetaConfig(hidden_size=16, item_embedding_dim=12, bptt=8, burn_in=4, batch_size=8,
                       epochs=1, item_feature_dim=8, item_feature_mlp_size=16, seed=1)



@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(seed=0, n_users=60, n_items=50, n_interactions=2_000)


@pytest.fixture(scope="module")
def fitted(data: SyntheticData) -> HrnnMetaFeaturizer:
    return HrnnMetaFeaturizer.fit(data.tables(), SMALL, schemas=data.schemas)


def history_of(table: pa.Table, user: str) -> list[tuple[str, float, str, float]]:
    rows = [r for r in table.to_pylist() if r["user_id"] == user]
    return [(r["item_id"], r["timestamp"].timestamp(), r["event_type"], r["event_value"])
            for r in rows]


def first_batch(hooks: HrnnMetaHooks, data: SyntheticData) -> dict:
    examples = hooks.featurizer.transform(data.tables())
    return next(iter(hooks.batches(examples, epoch=0)))


# --- configuration ------------------------------------------------------------------------------
def test_config_round_trip_and_descriptions() -> None:
    config = HrnnMetaConfig(hidden_size=64, bptt=16, trend_bias=True, lambda_sampling="fixed",
                            warm_lambda=0.3, learning_rate=0.01)
    again = HrnnMetaConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert HrnnMetaConfig().hidden_size == 43 and HrnnMetaConfig().bptt == 32
    assert HrnnMetaConfig().sampling_power == 0.75
    for name, field in HrnnMetaConfig.model_fields.items():
        assert field.description, f"{name} has no description"
    schema = HrnnMetaConfig.model_json_schema()
    assert schema["properties"]["hidden_size"]["minimum"] == 1


@pytest.mark.parametrize(("bad", "field"), [
    ({"hidden_sise": 10}, "hidden_sise"),
    ({"hidden_size": 0}, "hidden_size"),
    ({"dropout": 1.0}, "dropout"),
    ({"lambda_sampling": "beta"}, "lambda_sampling"),
    ({"warm_lambda": 1.5}, "warm_lambda"),
])
def test_config_rejects_unknown_and_out_of_range(bad: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        HrnnMetaConfig(**bad)
    assert field in str(info.value)
    assert info.value.errors()[0]["loc"] == (field,)


def test_registry_spec() -> None:
    spec = get_recipe("hrnn-meta")
    assert spec is RECIPE and spec.task == "next-item" and "KDD" in spec.paper
    assert spec.required == {DatasetKind.INTERACTIONS: (Role.USER_ID, Role.ITEM_ID, Role.TIMESTAMP)}
    assert set(spec.optional) == {DatasetKind.ITEMS, DatasetKind.USERS}
    assert spec.config_cls is HrnnMetaConfig and spec.predictor_cls is HrnnMetaPredictor


# --- featurizer ---------------------------------------------------------------------------------
def _assert_same_examples(a, b) -> None:
    assert a.user_ids == b.user_ids
    for name in ("user_index", "offsets", "items", "timestamps", "event_types", "event_values"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_featurizer_deterministic_and_save_load(data: SyntheticData, fitted: HrnnMetaFeaturizer,
                                                tmp_path: Path) -> None:
    again = HrnnMetaFeaturizer.fit(data.tables(), SMALL, schemas=data.schemas)
    assert again.state == fitted.state
    for name, array in fitted.arrays.items():
        np.testing.assert_array_equal(array, again.arrays[name])
    examples = fitted.transform(data.tables())
    _assert_same_examples(examples, fitted.transform(data.tables()))
    fitted.save(tmp_path)
    assert {p.suffix for p in tmp_path.iterdir()} == {".json", ".npy"}
    loaded = HrnnMetaFeaturizer.load(tmp_path)  # np.load(allow_pickle=False) inside
    _assert_same_examples(examples, loaded.transform(data.tables()))
    # Shuffled rows give the same sequences (sorted by user, then time).
    shuffled = data.interactions.take(np.random.default_rng(0).permutation(data.interactions.num_rows))
    _assert_same_examples(examples, fitted.transform({DatasetKind.INTERACTIONS: shuffled}))


def test_featurizer_contents(data: SyntheticData, fitted: HrnnMetaFeaturizer) -> None:
    examples = fitted.transform(data.tables())
    assert examples.num_events == data.interactions.num_rows
    assert fitted.num_items == 50 + 2 and fitted.num_users == 60 + 1
    assert fitted.event_types == ["click", "purchase"]
    assert int(fitted.item_freq.sum()) == data.interactions.num_rows
    for u in range(examples.num_users):  # chronological per user
        lo, hi = examples.offsets[u], examples.offsets[u + 1]
        assert np.all(np.diff(examples.timestamps[lo:hi]) >= 0)
    # Item features: genres as tags and the numeric price as a quantile token.
    tokens = fitted.state["item_feature_tokens"]
    item0 = fitted.item_index(data.items.column("item_id")[0].as_py())
    offsets, values = fitted.arrays["item_feat_offsets"], fitted.arrays["item_feat_values"]
    names = {tokens[v - 1] for v in values[offsets[item0]:offsets[item0 + 1]]}
    genres = data.items.column("genres")[0].as_py()
    assert {f"genres={g}" for g in genres} <= names
    assert any(n.startswith("price#q") for n in names)
    assert fitted.user_feature_rows(np.array([0])).tolist() == [[0]]  # unknown user: no features
    assert (fitted.user_feature_rows(np.array([1])) > 0).sum() == 2  # age_group, country


def test_featurizer_uses_schema_roles_and_any_timestamp_unit(data: SyntheticData,
                                                             fitted: HrnnMetaFeaturizer) -> None:
    inter = data.interactions
    renamed = pa.table({"who": inter.column("user_id"), "what": inter.column("item_id"),
                        "when": inter.column("timestamp").cast(pa.timestamp("ms", tz="UTC"))})
    schema = Schema(fields=[SchemaField(name="who", type=FieldType.STRING, role=Role.USER_ID),
                            SchemaField(name="what", type=FieldType.STRING, role=Role.ITEM_ID),
                            SchemaField(name="when", type=FieldType.TIMESTAMP, role=Role.TIMESTAMP)])
    tables = {DatasetKind.INTERACTIONS: renamed}
    bare = HrnnMetaFeaturizer.fit(tables, SMALL, schemas={DatasetKind.INTERACTIONS: schema})
    a, b = bare.transform(tables), fitted.transform(data.tables())
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_array_equal(a.items, b.items)
    assert bare.num_event_types == 2 and np.all(a.event_types == OOV)
    assert bare.num_item_tokens == 1 and bare.num_user_tokens == 1
    # A model without metadata or feedback columns still trains and scores.
    hooks = HrnnMetaHooks(SMALL, bare)
    loss = hooks.loss(hooks.build_model(), next(iter(hooks.batches(a, epoch=0))))
    assert torch.isfinite(loss)


def test_time_buckets() -> None:
    gaps = np.array([-5, 0, 1, 3, 60, 3600, 86_400, 10**12])
    assert time_bucket(gaps, 32).tolist() == [1, 1, 2, 3, 6, 12, 17, 31]
    assert time_bucket(gaps, 8).max() == 7


# --- batches and shapes -------------------------------------------------------------------------
def test_windows_cover_every_transition_once(data: SyntheticData,
                                             fitted: HrnnMetaFeaturizer) -> None:
    examples = fitted.transform(data.tables())
    windows = make_windows(examples, SMALL.bptt, SMALL.burn_in)
    seq, context, start, end = windows.T
    assert np.all(end - start <= SMALL.bptt) and np.all(start - context <= SMALL.burn_in)
    covered = np.concatenate([np.arange(s, e) for s, e in zip(start, end)])
    assert covered.size == len(set(covered.tolist())) == examples.num_events - examples.num_users
    hooks = HrnnMetaHooks(SMALL, fitted)
    total = sum(hooks.num_events(b) for b in hooks.batches(examples, epoch=0))
    assert total == examples.num_events - examples.num_users


def test_batches_shuffled_by_epoch_and_sharded(data: SyntheticData,
                                               fitted: HrnnMetaFeaturizer) -> None:
    examples = fitted.transform(data.tables())
    hooks = HrnnMetaHooks(SMALL, fitted)

    def targets(epoch: int, rank: int, world: int) -> list[np.ndarray]:
        return [b["targets"].numpy() for b in hooks.batches(examples, epoch=epoch, rank=rank,
                                                            world_size=world)]

    assert all(np.array_equal(a, b) for a, b in zip(targets(0, 0, 1), targets(0, 0, 1)))
    assert not all(np.array_equal(a, b) for a, b in zip(targets(0, 0, 1), targets(1, 0, 1)))
    shard0, shard1 = targets(0, 0, 2), targets(0, 1, 2)
    assert len(shard0) == len(shard1)
    n_windows = len(make_windows(examples, SMALL.bptt, SMALL.burn_in))
    assert sum(len(t) for t in shard0 + shard1) == n_windows - n_windows % 2
    with pytest.raises(ValueError, match="rank"):
        next(hooks.batches(examples, epoch=0, rank=2, world_size=2))


def test_output_shapes(data: SyntheticData, fitted: HrnnMetaFeaturizer) -> None:
    hooks = HrnnMetaHooks(SMALL, fitted)
    model = hooks.build_model()
    batch = first_batch(hooks, data)
    B, T = batch["items"].shape
    assert B == SMALL.batch_size and T == SMALL.burn_in + SMALL.bptt
    for key in ("time_buckets", "event_types", "event_values", "targets"):
        assert batch[key].shape == (B, T), key
    assert batch["user_features"].shape[0] == B and batch["lam"].shape == ()
    states = model.encode(batch["items"], batch["time_buckets"], batch["event_types"],
                          batch["event_values"], batch["user_features"])
    assert states.shape == (B, T, SMALL.hidden_size)
    assert model.scores(states[:, -1]).shape == (B, fitted.num_items)
    weight, bias = model.decoder(torch.tensor([2, 3, 4]), None)
    assert weight.shape == (3, SMALL.hidden_size) and bias.shape == (3,)


# --- loss, gradients, overfitting ---------------------------------------------------------------
@pytest.mark.parametrize("sampled", [False, True])
def test_finite_loss_and_gradients(data: SyntheticData, fitted: HrnnMetaFeaturizer,
                                   sampled: bool) -> None:
    config = SMALL.model_copy(update={"sampled_softmax_threshold": 0 if sampled else 10**6,
                                      "num_negatives": 16, "trend_bias": sampled})
    hooks = HrnnMetaHooks(config, fitted)
    assert hooks.sampled is sampled
    model = hooks.build_model()
    batch = first_batch(hooks, data)
    assert ("negatives" in batch) is sampled
    loss = hooks.loss(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.gru.weight_ih_l0.grad.abs().sum() > 0
    assert model.item_feature_mlp[0].weight.grad.abs().sum() > 0  # metadata path is trained


def test_sampled_softmax_with_every_item_once_equals_full_softmax(data: SyntheticData) -> None:
    """With a uniform proposal and every item drawn once, log-q correction cancels (§3.1)."""
    featurizer = HrnnMetaFeaturizer.fit(data.tables(), SMALL, schemas=data.schemas)
    featurizer.arrays["item_freq"][2:] = 7  # uniform proposal
    model = HrnnMetaModel.from_featurizer(SMALL, featurizer).eval()
    states = torch.randn(5, SMALL.hidden_size)
    targets = torch.tensor([2, 3, 10, 20, 51])
    everything = torch.arange(2, featurizer.num_items)
    full = model.full_softmax_loss(states, targets, 0.3)
    sampled = model.sampled_softmax_loss(states, targets, everything, 0.3)
    torch.testing.assert_close(sampled, full)


@pytest.mark.parametrize("sampled", [False, True])
def test_overfits_one_batch(data: SyntheticData, fitted: HrnnMetaFeaturizer, sampled: bool) -> None:
    config = SMALL.model_copy(update={"dropout": 0.0, "learning_rate": 0.02, "num_negatives": 16,
                                      "sampled_softmax_threshold": 0 if sampled else 10**6})
    hooks = HrnnMetaHooks(config, fitted)
    model = hooks.build_model()
    first, last = overfit(hooks, model, hooks.configure_optimizer(model), first_batch(hooks, data), 100)
    assert last < 0.2 * first, (first, last)


def test_lazy_adam_equals_adam_on_dense_gradients() -> None:
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    ref = torch.optim.Adam([a], lr=0.05, weight_decay=0.01)
    lazy = LazyAdam([b], lr=0.05, weight_decay=0.01)
    for _ in range(5):
        g = torch.randn(5, 3)
        a.grad, b.grad = g.clone(), g.clone()
        ref.step()
        lazy.step()
    torch.testing.assert_close(b, a)


def test_sampled_softmax_updates_only_the_rows_a_batch_touches(data: SyntheticData,
                                                               fitted: HrnnMetaFeaturizer) -> None:
    """§3.1: with sampled softmax only the sampled items' weights move (sparse gradients): one
    step of the generic loop, on its first batch."""
    config = SMALL.model_copy(update={"sampled_softmax_threshold": 0, "num_negatives": 8,
                                      "max_grad_norm": 1e-3, "weight_decay": 0.01})
    hooks = HrnnMetaHooks(config, fitted)
    model = hooks.build_model()
    optimizer = hooks.configure_optimizer(model)
    assert isinstance(optimizer, LazyAdam) and model.output_weight.sparse
    batch = first_batch(hooks, data)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    examples = hooks.featurizer.transform(data.tables())
    [epoch] = epochs(hooks, model, optimizer, examples, num_epochs=1, on_step=lambda step: True)
    assert epoch["batches"] == 1 and model.output_weight.weight.grad.is_sparse
    grads = [p.grad.coalesce().values() if p.grad.is_sparse else p.grad
             for p in model.parameters() if p.grad is not None]
    clipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert float(clipped) == pytest.approx(config.max_grad_norm, rel=1e-3)  # clipped, not smaller
    touched_out = torch.cat([batch["targets"][batch["targets"] > 0], batch["negatives"]]).unique()
    touched_in = batch["items"][batch["items"] > 0].unique()
    for name, rows in (("output_weight.weight", touched_out), ("output_bias.weight", touched_out),
                       ("item_embedding.weight", touched_in)):
        moved = (dict(model.named_parameters())[name] != before[name]).any(dim=1)
        assert moved.nonzero().flatten().tolist() == rows.tolist(), name
    assert not torch.equal(model.gru.weight_ih_l0, before["gru.weight_ih_l0"])  # dense: Adam


def test_lazy_adam_checkpoint_resumes_exactly(data: SyntheticData,
                                              fitted: HrnnMetaFeaturizer) -> None:
    """The generic loop checkpoints optimizer.state_dict() after an epoch and loads it with
    weights_only=True (as Ray Train's workers do): epochs 0-1 straight == epoch 0, resume, epoch 1."""
    import io

    config = SMALL.model_copy(update={"sampled_softmax_threshold": 0, "num_negatives": 8,
                                      "dropout": 0.0})
    hooks = HrnnMetaHooks(config, fitted)
    examples = hooks.featurizer.transform(data.tables())

    def run(model: HrnnMetaModel, optimizer: torch.optim.Optimizer, start: int, end: int) -> None:
        for _ in epochs(hooks, model, optimizer, examples, num_epochs=end, start_epoch=start):
            pass

    straight = hooks.build_model()
    run(straight, hooks.configure_optimizer(straight), 0, 2)
    first = hooks.build_model()
    optimizer = hooks.configure_optimizer(first)
    run(first, optimizer, 0, 1)
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = hooks.build_model()
    optimizer = hooks.configure_optimizer(resumed)
    resumed.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    run(resumed, optimizer, 1, 2)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(b, a, msg=name)


def test_loss_goes_through_forward_so_ddp_wrapping_works(data: SyntheticData,
                                                         fitted: HrnnMetaFeaturizer,
                                                         tmp_path: Path) -> None:
    """Ray Train wraps the model in DistributedDataParallel; hooks.loss must call forward."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    hooks = HrnnMetaHooks(SMALL, fitted)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        model = DistributedDataParallel(hooks.build_model())
        loss = hooks.loss(model, first_batch(hooks, data))
        loss.backward()
        assert torch.isfinite(loss) and model.module.output_weight.weight.grad is not None
    finally:
        dist.destroy_process_group()


# --- artifact and predictor ---------------------------------------------------------------------
def _train(config: HrnnMetaConfig, featurizer: HrnnMetaFeaturizer, examples) -> HrnnMetaModel:
    hooks = HrnnMetaHooks(config, featurizer)
    model = hooks.build_model()
    for _ in epochs(hooks, model, hooks.configure_optimizer(model), examples, num_epochs=config.epochs):
        pass
    return model.eval()


def test_save_artifact_then_load_gives_identical_scores(data: SyntheticData,
                                                        fitted: HrnnMetaFeaturizer,
                                                        tmp_path: Path) -> None:
    model = _train(SMALL, fitted, fitted.transform(data.tables()))
    save_artifact(tmp_path, RECIPE, SMALL, fitted, model)
    assert {p.name for p in tmp_path.iterdir()} == set(ARTIFACT_FILES.values())
    before = HrnnMetaPredictor(SMALL, fitted, model)
    after = RECIPE.predictor_cls.load(tmp_path)
    users = ["u0001", "u0002", "u0003"]
    histories = [history_of(data.interactions, u) for u in users]
    times = [h[-1][1] + 30 for h in histories]
    a = before.score_histories(histories, user_ids=users, request_times=times)
    b = after.score_histories(histories, user_ids=users, request_times=times)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == (3, fitted.num_items) and torch.isinf(a[:, :2]).all()
    queries = [Query(history=h, user_id=u, time=t, num_results=5) for h, u, t in zip(histories, users, times)]
    one, again = after.predict_batch(queries[:1])[0], before.predict_batch(queries)[0]
    # Alone or in a batch, loaded or in memory: the same answer (scores up to float rounding).
    assert one.ids == again.ids and len(one.ids) == 5 and not one.fallback
    assert [s for _, s in one.ranked] == pytest.approx([s for _, s in again.ranked], abs=1e-5)
    assert one.ids == [fitted.item_ids[j - 2] for j in torch.topk(a[0], 5).indices.tolist()]
    scores = [s for _, s in one.ranked]
    assert scores == sorted(scores, reverse=True)


def test_recommend_is_real_time_and_honours_exclusions(data: SyntheticData,
                                                       fitted: HrnnMetaFeaturizer) -> None:
    predictor = HrnnMetaPredictor(SMALL, fitted, _train(SMALL, fitted,
                                                        fitted.transform(data.tables())))
    history = history_of(data.interactions, "u0004")
    now = history[-1][1] + 60
    base = predictor.score_histories([history], request_times=[now])
    longer = history + [("i0007", now, "purchase", 1.0)]
    assert not torch.equal(base, predictor.score_histories([longer], request_times=[now + 60]))
    later = predictor.score_histories([history], request_times=[now + 30 * 86_400])
    assert not torch.equal(base, later)  # the time-delta control input matters
    recs, only, top, empty = predictor.predict_batch([
        Query(history=history, num_results=10, exclude={"i0001", "i0002"}, time=now),
        Query(history=history, candidates=["i0003", "i0005", "not-an-item"], time=now),
        Query(history=history, num_results=10, exclude={e[0] for e in history}, time=now),
        Query(history=[], num_results=10, time=now)])
    assert len(recs.ids) == 10 and not {"i0001", "i0002"} & set(recs.ids)
    assert set(only.ids) == {"i0003", "i0005"}  # unknown candidates are left out
    assert not {e[0] for e in history} & set(top.ids)
    # An empty history gets the training popularity, flagged.
    assert empty.fallback and not top.fallback and len(empty.ids) == 10
    order = np.argsort(-fitted.item_freq[2:], kind="stable")[:10]
    assert empty.ids == [fitted.item_ids[i] for i in order]


# --- cold start (§2.3) --------------------------------------------------------------------------
def test_cold_start_items_are_scored_from_metadata_only(data: SyntheticData) -> None:
    cold = {"i0010", "i0011"}
    inter = data.interactions
    keep = pa.array([i not in cold for i in inter.column("item_id").to_pylist()])
    tables = {**data.tables(), DatasetKind.INTERACTIONS: inter.filter(keep)}
    featurizer = HrnnMetaFeaturizer.fit(tables, SMALL, schemas=data.schemas)
    cold_idx = [featurizer.item_index(i) for i in sorted(cold)]
    assert all(i > OOV for i in cold_idx) and not featurizer.item_freq[cold_idx].any()
    model = _train(SMALL, featurizer, featurizer.transform(tables))
    predictor = HrnnMetaPredictor(SMALL, featurizer, model)
    history = history_of(tables[DatasetKind.INTERACTIONS], "u0005")
    now = history[-1][1] + 60
    scores = predictor.score_histories([history], request_times=[now])[0]
    # λ = 1: the id weights of a cold item play no part in its score (a warm item's do) ...
    warm = featurizer.item_index("i0001")
    with torch.no_grad():
        model.output_bias.weight[cold_idx + [warm]] += 100.0
        model.output_weight.weight[cold_idx] += 100.0
    changed = HrnnMetaPredictor(SMALL, featurizer, model)
    again = changed.score_histories([history], request_times=[now])[0]
    torch.testing.assert_close(again[cold_idx], scores[cold_idx])
    assert float(again[warm] - scores[warm]) == pytest.approx(100.0 * (1 - SMALL.warm_lambda))
    # ... and an item added to the catalog after training, with the same metadata, gets the same
    # score (a campaign adds the items dataset's new items at load: `update_catalog`).
    row = data.items.filter(pa.array([i == "i0010" for i in data.items.column("item_id")
                                      .to_pylist()]))
    added = row.set_column(row.schema.get_field_index("item_id"), "item_id", pa.array(["brand-new"]))
    items = pa.concat_tables([data.items, added])
    assert predictor.update_catalog({DatasetKind.ITEMS: items}, data.schemas) == 1
    assert predictor.update_catalog({DatasetKind.ITEMS: items}, data.schemas) == 0  # idempotent
    recs = predictor.predict_batch([Query(history=history, time=now, candidates=["brand-new", "i0010"])])[0]
    by_id = dict(recs.ranked)
    assert by_id["brand-new"] == pytest.approx(by_id["i0010"], abs=1e-5)
    assert by_id["i0010"] == pytest.approx(float(scores[cold_idx[0]]), abs=1e-5)
    everything = predictor.predict_batch([Query(history=history, time=now, num_results=10_000)])[0]
    assert "brand-new" in everything.ids  # recommendable too, not only rankable


# --- quality ------------------------------------------------------------------------------------
def test_beats_popularity_on_planted_successors() -> None:
    """Hold out each user's last event; the GRU must learn the planted successor chains."""
    data = generate(seed=3, n_users=300, n_items=200, n_interactions=12_000)
    inter = data.interactions
    users = inter.column("user_id").to_numpy(zero_copy_only=False)
    last = np.r_[users[1:] != users[:-1], True]
    train = inter.filter(pa.array(~last))
    test = inter.filter(pa.array(last)).to_pylist()
    tables = {**data.tables(), DatasetKind.INTERACTIONS: train}
    config = HrnnMetaConfig(epochs=10, learning_rate=0.02, bptt=16, burn_in=8, batch_size=64,
                            hidden_size=32, item_embedding_dim=32, seed=0)
    featurizer = HrnnMetaFeaturizer.fit(tables, config, schemas=data.schemas)
    model = _train(config, featurizer, featurizer.transform(tables))
    predictor = HrnnMetaPredictor(config, featurizer, model)
    histories: dict[str, list] = {}
    for r in train.to_pylist():
        histories.setdefault(r["user_id"], []).append(
            (r["item_id"], r["timestamp"].timestamp(), r["event_type"], r["event_value"]))
    top = [a.ids for a in predictor.predict_batch([
        Query(history=histories[r["user_id"]], user_id=r["user_id"], time=r["timestamp"].timestamp(),
              num_results=10) for r in test])]
    model_hits = np.mean([r["item_id"] in t for r, t in zip(test, top)])
    order = np.argsort(-featurizer.item_freq[2:], kind="stable")[:10]
    popular = {featurizer.item_ids[i] for i in order}
    pop_hits = np.mean([r["item_id"] in popular for r in test])
    successor_hits = np.mean([data.successor[histories[r["user_id"]][-1][0]] in t
                              for r, t in zip(test, top)])
    assert model_hits > 1.5 * pop_hits and model_hits > pop_hits + 0.15, (model_hits, pop_hits)
    assert successor_hits > 0.7, successor_hits


class TestConformance(RecipeConformance):
    recipe_id = "hrnn-meta"
    hyperparameters = {"epochs": 1, "hidden_size": 16, "item_embedding_dim": 16, "batch_size": 32,
                       "bptt": 8, "burn_in": 4, "seed": 0}

    def data(self):
        data = generate(seed=6, n_users=60, n_items=40, n_interactions=1500)
        return data.tables(), data.schemas

    def queries(self, tables):
        history = history_of(tables[DatasetKind.INTERACTIONS], "u0003")
        now = history[-1][1] + 60
        return [Query(history=history, time=now, num_results=10, exclude={e[0] for e in history}),
                Query(num_results=4, time=now),
                Query(history=history, time=now, candidates=["i0002", "i0009", "nope"], num_results=5)]
