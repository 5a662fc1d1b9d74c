#!/usr/bin/env python3
"""Write a random-weight llama-architecture GGUF model and its tokenizer, with no download.

    make-random-llama.py OUT_DIR NAME N_EMBD N_LAYER N_HEAD N_FF N_VOCAB N_CTX [f16|f32]

Llama-3.1-8B's shape: 4096 32 32 14336 32000 8192 f16 (16 GB; no grouped-query attention, so
its KV cache is 4x Llama-3.1-8B's). The compute per token is that of a real model of this shape;
the text is noise. Needs numpy, tokenizers and gguf.

- Tokenizer: a byte-level BPE trained here on the Python standard library's text, saved as
  OUT_DIR/NAME-tokenizer/tokenizer.json, so a benchmark can count prompt tokens exactly as the
  server does (lmbench's TOKENIZER key).
- Generation never ends early: the end-of-text token and every token that is not valid UTF-8
  on its own get a huge negative logit (the output matrix holds -200 in a channel that stays
  constant through the network because every residual write to it is zero).
- Weights: slices of one seeded random pool, so 8 billion parameters take seconds to make
  rather than minutes; the result is the same file for the same arguments.
"""
import glob
import json
import os
import sys

import gguf
import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

out_dir, name = sys.argv[1], sys.argv[2]
n_embd, n_layer, n_head, n_ff, n_vocab, n_ctx = map(int, sys.argv[3:9])
ftype = sys.argv[9] if len(sys.argv) > 9 else "f16"
wdt = np.float16 if ftype == "f16" else np.float32
os.makedirs(out_dir, exist_ok=True)


def corpus():
    lib = os.path.dirname(os.__file__)
    for path in sorted(glob.glob(os.path.join(lib, "*.py")))[:400]:
        with open(path, encoding="utf-8", errors="ignore") as fh:
            yield fh.read()


EOT = "<|endoftext|>"
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(
    corpus(),
    trainer=trainers.BpeTrainer(
        vocab_size=n_vocab,
        special_tokens=[EOT],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    ),
)
vocab = tok.get_vocab()
n_vocab = len(vocab)
tokens = [""] * n_vocab
for text, idx in vocab.items():
    tokens[idx] = text
eot = vocab[EOT]
merges = [m if isinstance(m, str) else " ".join(m) for m in json.loads(tok.to_str())["model"]["merges"]]
tok_dir = os.path.join(out_dir, name + "-tokenizer")
os.makedirs(tok_dir, exist_ok=True)
tok.save(os.path.join(tok_dir, "tokenizer.json"))

# Byte-level BPE maps bytes to printable code points; invert it to find tokens that are not
# valid UTF-8 alone (streamed text would carry replacement characters) or are control bytes.
printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
mapped = printable[:]
extra = 0
for b in range(256):
    if b not in printable:
        printable.append(b)
        mapped.append(256 + extra)
        extra += 1
char_to_byte = {chr(c): b for b, c in zip(printable, mapped)}
banned = np.zeros(n_vocab, dtype=bool)
for idx, text in enumerate(tokens):
    try:
        raw = bytes(char_to_byte[ch] for ch in text)
        raw.decode("utf-8")
        banned[idx] = idx == eot or any(b < 32 and b not in (9, 10) for b in raw)
    except (KeyError, UnicodeDecodeError):
        banned[idx] = True

rng = np.random.default_rng(20261125)
POOL = rng.standard_normal(1 << 24, dtype=np.float32) * 0.02  # 16M values
cursor = [0]


def weights(rows, cols):
    """rows x cols values cut from the pool at a moving offset (wrapping around)."""
    n = rows * cols
    start = cursor[0] % POOL.size
    cursor[0] += 7919 * 131
    reps = -(-(start + n) // POOL.size)
    flat = np.tile(POOL, reps)[start : start + n] if reps > 1 else POOL[start : start + n]
    return flat.reshape(rows, cols).astype(wdt)


emb = weights(n_vocab, n_embd).astype(np.float32)
emb[:, 0] = 0.15
out = weights(n_vocab, n_embd).astype(np.float32) * 50.0
out[:, 0] = 0.0
out[banned, 0] = -200.0

w = gguf.GGUFWriter(os.path.join(out_dir, name + ".gguf"), "llama")
w.add_name(name)
w.add_context_length(n_ctx)
w.add_embedding_length(n_embd)
w.add_block_count(n_layer)
w.add_feed_forward_length(n_ff)
w.add_head_count(n_head)
w.add_head_count_kv(n_head)
w.add_rope_dimension_count(n_embd // n_head)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_freq_base(500000.0)
w.add_vocab_size(n_vocab)
w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if ftype == "f16" else gguf.LlamaFileType.ALL_F32)
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("gpt-2")
w.add_token_list(tokens)
w.add_token_types([gguf.TokenType.CONTROL if i == eot else gguf.TokenType.NORMAL for i in range(n_vocab)])
w.add_token_merges(merges)
w.add_bos_token_id(eot)
w.add_eos_token_id(eot)
w.add_add_bos_token(False)
w.add_tensor("token_embd.weight", emb.astype(wdt))
w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
w.add_tensor("output.weight", out.astype(wdt))
for layer in range(n_layer):
    p = f"blk.{layer}."
    w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    for t in ("attn_q", "attn_k", "attn_v"):
        w.add_tensor(p + t + ".weight", weights(n_embd, n_embd))
    wo = weights(n_embd, n_embd)
    wo[0, :] = 0  # channel 0 is never written: it carries the ban to the output
    w.add_tensor(p + "attn_output.weight", wo)
    w.add_tensor(p + "ffn_gate.weight", weights(n_ff, n_embd))
    w.add_tensor(p + "ffn_up.weight", weights(n_ff, n_embd))
    wd = weights(n_embd, n_ff)
    wd[0, :] = 0
    w.add_tensor(p + "ffn_down.weight", wd)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
params = 2 * n_vocab * n_embd + n_layer * (4 * n_embd * n_embd + 3 * n_embd * n_ff)
print(f"wrote {name}.gguf: {params / 1e9:.2f}B parameters, vocab {n_vocab}, {int(banned.sum())} tokens banned")
