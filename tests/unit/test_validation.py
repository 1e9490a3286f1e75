"""Best-epoch selection and early stopping (`training_jobs.validation.BestEpoch`)."""

from __future__ import annotations

import torch

from training_jobs.validation import BestEpoch


def test_keeps_the_best_epochs_weights_and_stops_after_patience() -> None:
    model = torch.nn.Linear(2, 1)
    best = BestEpoch(patience=2)
    stops = []
    for epoch, score in enumerate([0.1, 0.3, 0.2, 0.25, 0.9]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        stops.append(best.update(epoch, score, model))
        if stops[-1]:
            break
    assert stops == [False, False, False, True]  # two epochs without beating epoch 1
    assert best.best_epoch == 1 and best.best_score == 0.3
    assert torch.equal(best.best_state["weight"], torch.full((1, 2), 1.0))  # a copy, not a view
    assert best.describe() == {"scores": [0.1, 0.3, 0.2, 0.25], "best_epoch": 2, "best_score": 0.3}


def test_a_tie_keeps_the_earlier_epoch_and_state_survives_a_checkpoint() -> None:
    model = torch.nn.Linear(2, 1)
    best = BestEpoch(patience=3)
    best.update(0, 0.5, model)
    best.update(1, 0.5, model)
    assert best.best_epoch == 0
    resumed = BestEpoch.from_state(best.state_dict())
    assert resumed.best_epoch == 0 and resumed.scores == [0.5, 0.5]
    assert not resumed.update(2, 0.4, model) and resumed.update(3, 0.4, model)


def test_a_non_finite_score_is_never_best_and_is_recorded_as_null() -> None:
    model = torch.nn.Linear(2, 1)
    best = BestEpoch(patience=5)
    best.update(0, float("-inf"), model)
    best.update(1, 0.2, model)
    assert best.best_epoch == 1 and best.describe()["scores"] == [None, 0.2]


def test_the_cli_says_which_epoch_was_kept_and_what_is_served() -> None:
    from sdk.types import SolutionVersion
    from tagrec.cli import _training_summary

    def version(training: dict | None, served: str | None = "all-data") -> SolutionVersion:
        return SolutionVersion.model_validate({
            "name": "v", "status": "ACTIVE", "created_at": "2026-12-01T00:00:00Z",
            "updated_at": "2026-12-01T00:00:00Z", "dataset_group": "g", "solution": "s",
            "recipe": "hrnn-meta", "training": training, "served_model": served})

    validated = {"epochs": 6, "refit": {"epochs": 4},
                 "validation": {"metric": "mrr", "best_epoch": 4, "best_score": 0.2011, "cases": 1300,
                                "stopped_early": True}}
    assert _training_summary(version(validated)) == (
        "trained 6 epochs; best epoch 4 by validation mrr 0.2011 (1,300 cases), stopped early; "
        "served: refitted on all the data for 4 epochs")
    skipped = {"epochs": 2, "validation": {"skipped": "no validation split (too few users); trained every "
                                                      "epoch"}}
    assert _training_summary(version(skipped, "evaluated")) == (
        "trained 2 epochs; no validation split (too few users); trained every epoch")
    assert _training_summary(version({"epochs": 0})) == "" and _training_summary(version(None)) == ""


class _Scripted:
    """A validation whose scores are given in advance (what `fit_in_process` asks of one)."""

    def __init__(self, scores: list[float], patience: int) -> None:
        self.scores, self.patience, self.calls = list(scores), patience, 0

    def score(self, spec, config, featurizer, model) -> float:  # noqa: ANN001
        self.calls += 1
        return self.scores.pop(0)


def _fit(scores: list[float], patience: int, epochs: int) -> list[dict]:
    from sdk.synthetic import generate
    from training_jobs.loop import fit_in_process

    data = generate(seed=0, n_users=40, n_items=30, n_interactions=400)
    seen: list[dict] = []
    tiny = {"epochs": epochs, "hidden_size": 8, "item_embedding_dim": 8, "batch_size": 32}
    fit_in_process("hrnn-meta", tiny, data.tables(), schemas=data.schemas, threads=1,
                   validation=_Scripted(scores, patience), on_epoch=seen.append)
    return seen


def test_the_fit_stops_exactly_patience_epochs_after_the_best() -> None:
    seen = _fit([0.1, 0.4, 0.3, 0.2, 0.9, 0.9], patience=2, epochs=6)
    assert [m["validation_score"] for m in seen] == [0.1, 0.4, 0.3, 0.2]  # epoch 5 never ran


def test_the_fit_runs_every_epoch_while_scores_improve() -> None:
    seen = _fit([0.1, 0.2, 0.3], patience=1, epochs=3)
    assert len(seen) == 3
