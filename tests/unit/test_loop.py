"""The one training loop (`training_jobs.loop.epochs`): what `on_step` sees, and ending training there."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from recipes.hrnn_meta import HrnnMetaFeaturizer, HrnnMetaHooks
from sdk.synthetic import generate
from tests.unit.conformance import one_torch_thread  # noqa: F401 - the autouse fixture
from tests.unit.test_hrnn_meta import SMALL
from training_jobs.loop import epochs


@pytest.fixture(scope="module")
def setup() -> tuple[HrnnMetaHooks, Any]:
    data = generate(seed=0, n_users=40, n_items=30, n_interactions=1_000)
    featurizer = HrnnMetaFeaturizer.fit(data.tables(), SMALL, schemas=data.schemas)
    return HrnnMetaHooks(SMALL, featurizer), featurizer.transform(data.tables())


def _run(hooks: HrnnMetaHooks, examples: Any, **kw: Any) -> tuple[torch.nn.Module, list[dict]]:
    model = hooks.build_model()
    return model, list(epochs(hooks, model, hooks.configure_optimizer(model), examples, **kw))


def _figures(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "seconds"} for m in history]


def test_on_step_sees_every_step_and_leaves_training_as_it_is(setup: tuple) -> None:
    hooks, examples = setup
    plain_model, plain = _run(hooks, examples, num_epochs=2)
    steps: list[dict] = []
    model, seen = _run(hooks, examples, num_epochs=2, on_step=steps.append)  # None: go on
    assert _figures(seen) == _figures(plain)
    assert [(s["epoch"], s["batch"]) for s in steps] == \
        [(m["epoch"], b) for m in plain for b in range(m["batches"])]
    for m in seen:
        mine = [s for s in steps if s["epoch"] == m["epoch"]]
        assert m["loss"] == pytest.approx(sum(s["loss"] for s in mine) / len(mine))
        assert m["events"] == sum(s["events"] for s in mine) > 0
    for (name, a), b in zip(plain_model.state_dict().items(), model.state_dict().values()):
        torch.testing.assert_close(b, a, msg=name)


def test_a_truthy_on_step_ends_training_after_that_step(setup: tuple) -> None:
    hooks, examples = setup
    _, [full] = _run(hooks, examples, num_epochs=1)
    stop_at = full["batches"] + 3  # the third step of the second epoch
    steps: list[dict] = []
    _, seen = _run(hooks, examples, num_epochs=3,
                   on_step=lambda step: steps.append(step) or len(steps) == stop_at)
    assert len(steps) == stop_at
    assert [m["epoch"] for m in seen] == [0, 1]  # the stopped epoch is yielded, no later one runs
    assert _figures(seen)[0] == _figures([full])[0]
    assert seen[1]["batches"] == 3 and seen[1]["events"] == sum(s["events"] for s in steps[-3:])
