"""A Hugging Face ``tokenizers`` tokenizer rebuilt from the vocabulary a GGUF file carries.

A GGUF holds its tokenizer as metadata: the tokens (``tokenizer.ggml.tokens``), their types
(normal, control, user-defined, byte), the BPE merges and the name of the pre-tokenizer
llama.cpp splits text with (``tokenizer.ggml.pre``). For the byte-level BPE vocabularies of
Llama 3, Qwen2 and SmolLM (``tokenizer.ggml.model = gpt2``) that is the whole tokenizer: the
same splitting, the same merges, the same ids as llama.cpp. SentencePiece vocabularies
(``llama``: Llama 2, Mistral, TinyLlama) are rebuilt as BPE with byte fallback, with merges
recovered from the token scores the way llama.cpp applies them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

log = logging.getLogger(__name__)

CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types

# llama.cpp's pre-tokenizer expressions (src/llama-vocab.cpp), applied one after another.
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "default": (_GPT2,),
    "gpt-2": (_GPT2,),
    "llama3": (_LLAMA3,),
    "llama-v3": (_LLAMA3,),
    "llama-bpe": (_LLAMA3,),
    "smaug-bpe": (_LLAMA3,),
    "dbrx": (_LLAMA3,),
    "qwen2": (_QWEN2,),
    "deepseek-r1-qwen": (_QWEN2,),
    "smollm": (r"\p{N}", _GPT2),
    "starcoder": (r"\p{N}", _GPT2),
    "refact": (r"\p{N}", _GPT2),
}


class TokenizerRefused(ValueError):
    """The file's tokenizer is of a kind this module cannot rebuild exactly."""


def build_tokenizer(metadata: dict) -> Tokenizer:
    """The tokenizer of a GGUF file, from its ``tokenizer.ggml.*`` metadata (as ``mx.load`` returns it).

    Raises:
        TokenizerRefused: the file has no vocabulary, or one of a kind not rebuilt here.
    """
    kind = metadata.get("tokenizer.ggml.model")
    tokens: list[str] | None = metadata.get("tokenizer.ggml.tokens")
    if not tokens:
        raise TokenizerRefused("the file carries no tokenizer vocabulary (tokenizer.ggml.tokens)")
    types = [int(t) for t in _list(metadata.get("tokenizer.ggml.token_type"))] or [1] * len(tokens)
    if kind == "gpt2":
        tokenizer = _byte_level(
            tokens, list(metadata.get("tokenizer.ggml.merges") or []), str(metadata.get("tokenizer.ggml.pre") or "default")
        )
    elif kind == "llama":
        scores = [float(s) for s in _list(metadata.get("tokenizer.ggml.scores"))]
        space_prefix = metadata.get("tokenizer.ggml.add_space_prefix")  # Gemma's files say False
        unknown = tokens[int(_scalar(metadata.get("tokenizer.ggml.unknown_token_id"), default=0))]  # type: ignore[call-overload]
        tokenizer = _sentencepiece(
            tokens, scores, types, unknown=unknown, add_space_prefix=bool(_scalar(space_prefix, default=True))
        )
    else:
        raise TokenizerRefused(
            f"tokenizer kind {kind!r} is not supported (supported: 'gpt2' byte-level BPE, 'llama' SentencePiece)"
        )
    control = [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types, strict=True) if k == CONTROL]
    user = [AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types, strict=True) if k == USER_DEFINED]
    # llama.cpp matches control and user-defined tokens whole wherever they appear in the text.
    tokenizer.add_special_tokens(control)
    tokenizer.add_tokens(user)
    return tokenizer


def _scalar(value: object, default: object) -> object:
    if value is None:
        return default
    return value.item() if hasattr(value, "item") else value


def _list(value: object) -> list:
    if value is None:
        return []
    return value.tolist() if hasattr(value, "tolist") else list(value)  # type: ignore[call-overload]


def _byte_level(tokens: Sequence[str], merges: list[str], pre: str) -> Tokenizer:
    expressions = PRE_TOKENIZERS.get(pre)
    if expressions is None:
        log.warning("GGUF pre-tokenizer %r is unknown here; splitting text as GPT-2 does", pre)
        expressions = PRE_TOKENIZERS["default"]
    vocab = {token: i for i, token in enumerate(tokens)}
    pairs = [(left, right) for left, _, right in (m.partition(" ") for m in merges)]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, ignore_merges=pre.startswith("llama")))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(e), behavior="isolated") for e in expressions]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _sentencepiece(
    tokens: Sequence[str], scores: Sequence[float], types: Sequence[int], *, unknown: str, add_space_prefix: bool
) -> Tokenizer:
    """SentencePiece BPE as llama.cpp runs it: the pair whose merged piece scores highest merges first.

    ``add_space_prefix``: a space is put before the text (Llama 2, Mistral), or not (Gemma).
    """
    vocab = {token: i for i, token in enumerate(tokens)}
    score = dict(zip(tokens, scores or [0.0] * len(tokens), strict=True))
    merges: list[tuple[float, int, int, tuple[str, str]]] = []
    for token, i in vocab.items():
        if types[i] != 1 or len(token) < 2:
            continue
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in vocab and right in vocab:
                merges.append((-score[token], vocab[left], vocab[right], (left, right)))
    merges.sort()
    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=[m[3] for m in merges], byte_fallback=True, fuse_unk=True, unk_token=unknown)
    )
    spaces = normalizers.Replace(" ", "\u2581")
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), spaces]) if add_space_prefix else spaces
    decode = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    tokenizer.decoder = decoders.Sequence([*decode, decoders.Strip(" ", 1, 0)] if add_space_prefix else decode)
    return tokenizer
