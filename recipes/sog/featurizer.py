"""Posts → word pieces and tag sets; the tokenizer, the tag vocabulary and the encoder's shape.

Follows Kang et al. (EMNLP'21) §3.4 (feature conversion and early fusion): a post's context is its
`context_fields` as words, each followed by ``[SEP]`` (a timestamp becomes season, weekday or
weekend, and part of day: '2020-07-01 14:52' → "summer weekday afternoon"), then its text fields
(title, body: the schema's ``text`` fields, in order) joined by newlines; the encoder reads
``[CLS] context [SEP]``, cut to `max_length` word pieces. §3.4 delimits each feature type by its own
token ([LOC], [TIME]); one ``[SEP]`` serves them all here, so a checkpoint needs no new token.

Two tokenizer sources (`tokenizers`, the Rust WordPiece of BERT): trained here on the training
posts' text (lower-cased, `vocab_size` pieces), or the checkpoint's own (tokenizer.json, else
vocab.txt with its tokenizer_config's lower-casing). Either is saved in the artifact as
tokenizer.json, with the encoder's config (encoder.json) and the tags: the artifact alone answers.
A checkpoint's weights are read at fit (kept in memory for `build_model`, never saved here: the
artifact's weights.pt holds the fine-tuned encoder).

Tags: the tags on at least `min_tag_count` training posts, most posts first (ties in string order,
so the fit does not depend on row order); index 0 is unknown (and padding). A training post is one
with 1 to `max_post_tags` known tags (A.2).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recipes.base import Featurizer
from recipes.common import Vocabulary, column_for, tag_lists, text_fields
from sdk.types import DatasetKind, FieldType, Role, Schema

from .configuration import SogConfig

__all__ = ["Ragged", "SogExamples", "SogFeaturizer", "load_checkpoint", "time_words"]

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # a scratch tokenizer's ids 0..4
_ROLES = ("pad", "unk", "cls", "sep", "mask")
_ENCODE_CHUNK = 4096
# Model types whose embeddings take token types and explicit positions as BERT's do; RoBERTa's
# positions start after its padding index.
_POSITION_OFFSET = {"bert": 0, "electra": 0, "roberta": 2, "xlm-roberta": 2, "camembert": 2}

Ragged = tuple[np.ndarray, np.ndarray]  # indptr (rows + 1,) int64, values int32


@dataclass(frozen=True)
class SogExamples:
    """The training posts: each one's context word pieces (no [CLS]/[SEP]) and known tag indices."""

    context: Ragged
    tags: Ragged

    def __len__(self) -> int:
        return len(self.tags[0]) - 1


def time_words(seconds: float) -> list[str]:
    """§3.4's time conversion: season (northern), weekday or weekend, part of day (UTC)."""
    t = datetime.fromtimestamp(float(seconds), tz=UTC)
    season = ("winter", "spring", "summer", "fall")[(t.month % 12) // 3]
    part = "night" if t.hour < 5 else "morning" if t.hour < 12 else "afternoon" if t.hour < 17 \
        else "evening" if t.hour < 21 else "night"
    return [season, "weekend" if t.weekday() >= 5 else "weekday", part]


def load_checkpoint(uri: str, into: Path) -> Path:
    """The local folder of a checkpoint: `uri` itself, or an ``s3://`` prefix copied into `into`
    (pyarrow's S3 client: the credentials and endpoint of the environment, as the store's)."""
    if uri.startswith("s3://"):
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(uri)
        infos = fs.get_file_info(pafs.FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True))
        files = [i for i in infos if i.type == pafs.FileType.File]
        if not files:
            raise ValueError(f"pretrained_encoder {uri!r}: no file under that S3 prefix")
        for info in files:
            target = into / Path(info.path).relative_to(path.rstrip("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(info.path) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)
        return into
    local = Path(uri).expanduser()
    if not local.is_dir():
        raise ValueError(f"pretrained_encoder {uri!r} is not a folder (a Hugging Face checkpoint folder "
                         f"or an s3:// URI is expected)")
    return local


class SogFeaturizer(Featurizer):
    """The tokenizer, tags, encoder config and text fields of a SOG model (module docstring)."""

    def __init__(self, tokenizer: Any, tags: Vocabulary, encoder: dict[str, Any], fields: list[str],
                 context: list[str], specials: Mapping[str, int],
                 initial_state: Mapping[str, Any] | None = None) -> None:
        self.tokenizer, self.tags, self.encoder, self.text_fields = tokenizer, tags, encoder, fields
        self.context_fields, self.specials = context, dict(specials)
        self.initial_state = initial_state  # a checkpoint's encoder weights, at fit only
        self.position_offset = _POSITION_OFFSET.get(str(encoder.get("model_type", "bert")), 0)
        self.max_length, self.max_post_tags = 256, 20
        self._time_fields: set[str] = set()
        self.item_fields: list[str] = []  # every field of the items schema (a request's other fields)
        self._tag_col = ""

    # --- fit ------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, tables: Mapping[DatasetKind, pa.Table], config: SogConfig, *,
            schemas: Mapping[DatasetKind, Schema]) -> SogFeaturizer:
        items, schema = tables.get(DatasetKind.ITEMS), schemas.get(DatasetKind.ITEMS)
        tag_col = column_for(schemas, DatasetKind.ITEMS, Role.TAGS)
        if items is None or schema is None or tag_col is None:
            raise ValueError("sog needs an items dataset with a TAGS field")
        names = {f.name for f in schema.fields}
        missing = [f for f in config.context_fields if f not in names]
        if missing:
            raise ValueError(f"context_fields {missing} are not fields of the items dataset "
                             f"({', '.join(sorted(names))})")
        fields = text_fields(schema, exclude=config.context_fields)
        if not fields and not config.context_fields:
            raise ValueError("sog needs text: the items dataset has no text field (e.g. title, content) "
                             "and no context_fields are named")
        tags = _tag_vocabulary(items.column(tag_col), config.min_tag_count)
        if not len(tags):
            raise ValueError(f"no tag is on {config.min_tag_count} or more training posts "
                             f"(min_tag_count): nothing to generate")
        if config.pretrained_encoder:
            with tempfile.TemporaryDirectory(prefix="tagrec-sog-ckpt-") as tmp:
                folder = load_checkpoint(config.pretrained_encoder, Path(tmp))
                tokenizer, specials = _checkpoint_tokenizer(folder, config.pretrained_encoder)
                encoder, state = _checkpoint_encoder(folder, config.pretrained_encoder)
        else:
            tokenizer, specials, state = None, {}, None
            encoder = {}
        out = cls(tokenizer, tags, encoder, fields, list(config.context_fields), specials, state)
        out._note_time_fields(schema)
        out.max_length, out.max_post_tags = config.max_length, config.max_post_tags
        if tokenizer is None:
            out.tokenizer, out.specials = _train_tokenizer(out._contexts(items), config.vocab_size)
            out.encoder = {"model_type": "bert", "vocab_size": out.tokenizer.get_vocab_size(),
                           "hidden_size": config.hidden_size, "num_hidden_layers": config.layers,
                           "num_attention_heads": config.heads, "intermediate_size": config.intermediate_size,
                           "hidden_dropout_prob": config.dropout,
                           "attention_probs_dropout_prob": config.dropout,
                           "max_position_embeddings": config.max_length + config.max_post_tags + 64,
                           "type_vocab_size": 2, "pad_token_id": out.specials["pad"]}
        limit = int(out.encoder.get("max_position_embeddings", 512)) - out.position_offset
        if config.max_length + config.max_post_tags + 1 > limit:
            raise ValueError(f"max_length ({config.max_length}) + max_post_tags ({config.max_post_tags}) + 1 "
                             f"exceeds the encoder's {limit} positions: lower max_length")
        return out

    # --- encoding -----------------------------------------------------------------------------------
    def context_text(self, row: Mapping[str, Any], extra: Sequence[str] = ()) -> str:
        """One post's context as text (module docstring) from its fields (missing ones skipped),
        `extra` texts after its text fields. A special token written in a value (``[MASK]``, say)
        is dropped: only the delimiters this method writes are tokens."""
        sep = f" {self._tokens()['sep']} "
        parts = []
        for name in self.context_fields:
            value = row.get(name)
            if value is None or value == "":
                continue
            if name in self._time_fields or isinstance(value, datetime):
                try:
                    words = " ".join(time_words(_seconds(value)))
                except (TypeError, ValueError, OverflowError, OSError):
                    continue  # not a time: the field says nothing
                parts.append(words + sep)
            else:
                parts.append(self._plain(str(value)) + sep)
        texts = [self._plain(str(row[f])) for f in self.text_fields if row.get(f)]
        texts += [self._plain(t) for t in extra if t]
        return "".join(parts) + "\n".join(texts)

    def encode(self, contexts: Sequence[str], max_length: int | None = None) -> list[np.ndarray]:
        """Each context's word pieces (int32), cut to `max_length` (default the config's) - 2: room
        for [CLS] and [SEP]."""
        keep = max((max_length or self.max_length) - 2, 0)
        out: list[np.ndarray] = []
        for lo in range(0, len(contexts), _ENCODE_CHUNK):
            batch = self.tokenizer.encode_batch(list(contexts[lo:lo + _ENCODE_CHUNK]),
                                                add_special_tokens=False)
            out += [np.asarray(e.ids[:keep], np.int32) for e in batch]
        return out

    def transform(self, tables: Mapping[DatasetKind, pa.Table]) -> SogExamples:
        """The training posts (module docstring), their contexts cut to `max_length`."""
        max_post_tags = self.max_post_tags
        items = tables[DatasetKind.ITEMS]
        tag_col = self._tag_col
        lists = tag_lists(items.column(tag_col))
        rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
        idx = self.tags.encode(pc.list_flatten(lists))
        known = idx > 0
        pairs = np.unique(rows[known].astype(np.int64) * self.tags.size + idx[known])  # distinct per post
        post, tag = pairs // self.tags.size, (pairs % self.tags.size).astype(np.int32)
        counts = np.bincount(post, minlength=items.num_rows)
        keep = np.flatnonzero((counts >= 1) & (counts <= max_post_tags))
        sel = np.isin(post, keep)
        tag_indptr = np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64)
        contexts = self._contexts(items.take(pa.array(keep, pa.int64())))
        pieces = self.encode(contexts)
        ctx_indptr = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
        ctx = np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)
        return SogExamples(context=(ctx_indptr, ctx), tags=(tag_indptr, tag[sel]))

    # --- persistence ------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        self.tokenizer.save(str(directory / "tokenizer.json"))
        (directory / "tags.json").write_text(self.tags.to_json())
        (directory / "encoder.json").write_text(json.dumps(self.encoder, indent=2))
        (directory / "state.json").write_text(json.dumps({
            "text_fields": self.text_fields, "context_fields": self.context_fields,
            "specials": self.specials, "time_fields": sorted(self._time_fields), "tags_col": self._tag_col,
            "item_fields": self.item_fields,
            "max_length": self.max_length, "max_post_tags": self.max_post_tags}))

    @classmethod
    def load(cls, directory: Path) -> SogFeaturizer:
        from tokenizers import Tokenizer

        directory = Path(directory)
        state = json.loads((directory / "state.json").read_text())
        out = cls(Tokenizer.from_file(str(directory / "tokenizer.json")),
                  Vocabulary.from_json((directory / "tags.json").read_text()),
                  json.loads((directory / "encoder.json").read_text()), list(state["text_fields"]),
                  list(state["context_fields"]), state["specials"])
        out._time_fields = set(state["time_fields"])
        out.item_fields = list(state.get("item_fields", []))
        out._tag_col = state["tags_col"]
        out.max_length, out.max_post_tags = int(state["max_length"]), int(state["max_post_tags"])
        return out

    # --- helpers -------------------------------------------------------------------------------------
    def _note_time_fields(self, schema: Schema) -> None:
        self.item_fields = [f.name for f in schema.fields]
        self._time_fields = {f.name for f in schema.fields
                             if f.name in self.context_fields and f.type == FieldType.TIMESTAMP}
        tags = schema.field_for(Role.TAGS)
        self._tag_col = tags.name if tags is not None else ""

    def _tokens(self) -> dict[str, str]:
        """The special tokens' strings (a scratch tokenizer's before it is trained)."""
        if self.tokenizer is None:
            return dict(zip(_ROLES, SPECIALS))
        return {role: self.tokenizer.id_to_token(i) or "" for role, i in self.specials.items()}

    def _plain(self, text: str) -> str:
        """`text` without special tokens; a lone surrogate (bytes decoded with surrogateescape, which
        the tokenizer refuses) becomes '?'."""
        text = text.encode("utf-8", "replace").decode("utf-8")
        for token in self._tokens().values():
            if token and token in text:
                text = text.replace(token, " ")
        return text

    def _contexts(self, items: pa.Table) -> list[str]:
        names = [n for n in (*self.context_fields, *self.text_fields) if n in items.column_names]
        rows = items.select(names).to_pylist()
        return [self.context_text(r) for r in rows]


def _seconds(value: Any) -> float:
    """Epoch seconds of a time: a datetime (UTC when it names no zone), a number, or a string of
    either (ISO 8601, as '2020-07-01 14:52' or '2020-07-01T14:52:00Z')."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            value = datetime.fromisoformat(value.strip())
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def _tag_vocabulary(column: pa.Array | pa.ChunkedArray, min_count: int) -> Vocabulary:
    """Tags on at least `min_count` posts (each post counts a tag once), most first, ties by string."""
    lists = tag_lists(column)
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(lists).cast(pa.string())
    if not len(flat):
        return Vocabulary([])
    encoded = pc.dictionary_encode(flat)
    values = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    distinct = np.unique(rows.astype(np.int64) * len(values) + codes) % len(values)
    counts = np.bincount(distinct, minlength=len(values))
    order = sorted((i for i in range(len(values)) if counts[i] >= min_count and values[i]),
                   key=lambda i: (-counts[i], values[i]))
    return Vocabulary([values[i] for i in order])


def _train_tokenizer(texts: list[str], vocab_size: int) -> tuple[Any, dict[str, int]]:
    """A lower-casing WordPiece tokenizer trained on `texts` (specials first: ids 0..4).

    The trainer numbers the continuing pieces (``##x``) in hash-map order and breaks ties between
    merges by those numbers, so two fits on the same text differ (huggingface/tokenizers#1794): a
    first pass without merges finds them, the real pass gets them first in string order."""
    from tokenizers import BertWordPieceTokenizer

    def train(size: int, first: list[str]) -> BertWordPieceTokenizer:
        trainer = BertWordPieceTokenizer(lowercase=True, clean_text=True, strip_accents=None)
        trainer.train_from_iterator(texts, vocab_size=size, min_frequency=2, show_progress=False,
                                    special_tokens=[*SPECIALS, *first], limit_alphabet=1000)
        return trainer

    pieces = sorted(t for t in train(len(SPECIALS), []).get_vocab() if t.startswith("##"))
    vocab = train(vocab_size, pieces).get_vocab()  # the pieces are plain vocabulary again below
    trainer = BertWordPieceTokenizer(vocab, lowercase=True, clean_text=True, strip_accents=None)
    tokenizer = trainer._tokenizer  # the plain `tokenizers.Tokenizer` (what `save`/`from_file` round-trip)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer, {role: tokenizer.token_to_id(tok) for role, tok in zip(_ROLES, SPECIALS)}


def _checkpoint_tokenizer(folder: Path, uri: str) -> tuple[Any, dict[str, int]]:
    """A checkpoint's tokenizer (tokenizer.json, else vocab.txt) and its special tokens' ids."""
    from tokenizers import BertWordPieceTokenizer, Tokenizer

    settings = _json(folder / "tokenizer_config.json")
    names = dict(zip(_ROLES, SPECIALS))
    for source in (settings, _json(folder / "special_tokens_map.json")):
        for role in _ROLES:
            value = source.get(f"{role}_token")
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str) and value:
                names[role] = value
    if (folder / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    elif (folder / "vocab.txt").is_file():
        tokenizer = BertWordPieceTokenizer(str(folder / "vocab.txt"),
                                           lowercase=bool(settings.get("do_lower_case", True)))._tokenizer
    else:
        raise ValueError(f"pretrained_encoder {uri!r} has no tokenizer.json or vocab.txt")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    ids = {role: tokenizer.token_to_id(tok) for role, tok in names.items()}
    absent = [names[r] for r, i in ids.items() if i is None]
    if absent:
        raise ValueError(f"pretrained_encoder {uri!r}: its tokenizer has no {', '.join(absent)} token")
    return tokenizer, ids


def _checkpoint_encoder(folder: Path, uri: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint's config (model_type one of `_POSITION_OFFSET`) and its encoder weights."""
    from safetensors.torch import load_file

    if not (folder / "config.json").is_file():
        raise ValueError(f"pretrained_encoder {uri!r} has no config.json")
    config = _json(folder / "config.json")
    kind = config.get("model_type")
    if kind not in _POSITION_OFFSET:
        raise ValueError(f"pretrained_encoder {uri!r}: model_type {kind!r} is not supported (supported: "
                         f"{', '.join(sorted(_POSITION_OFFSET))})")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"pretrained_encoder {uri!r} has no model.safetensors")
    state = load_file(str(weights))
    prefix = f"{str(kind).replace('-', '_')}."
    state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    return config, state


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path.name} of the pretrained encoder is not JSON: {e}") from None
    return value if isinstance(value, dict) else {}

